# The repository this tree lives in: its kernel/, Cargo workspace and
# rootfs-overlay/ are what the packages build and install.
DAEDALUS_SRCDIR = $(realpath $(BR2_EXTERNAL_DAEDALUS_PATH)/..)

include $(sort $(wildcard $(BR2_EXTERNAL_DAEDALUS_PATH)/package/*/*.mk))
