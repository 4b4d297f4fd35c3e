"""The daedalus-v4l2 test harness: guest artefacts, QEMU runner, targets."""
