//! The benchmark's FFmpeg side must decode to exactly the bytes the device
//! path is verified against, or the comparison is not like for like. Runs
//! over the harness's test streams when DAEDALUS_STREAMS_DIR names a
//! directory with their manifest.json (ci/harness/streams.py); skipped
//! otherwise.
#![cfg(feature = "ffmpeg")]

use std::path::Path;

use daedalus_tools::stream;
use daedalus_tools::swdecode;

#[test]
fn ffmpeg_baseline_matches_references() {
    let Ok(dir) = std::env::var("DAEDALUS_STREAMS_DIR") else {
        eprintln!("DAEDALUS_STREAMS_DIR not set: skipped");
        return;
    };
    let manifest = std::fs::read_to_string(Path::new(&dir).join("manifest.json"))
        .expect("manifest.json in DAEDALUS_STREAMS_DIR");
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(&manifest).expect("manifest is JSON");
    let mut checked = 0;
    for entry in entries {
        let name = entry["name"].as_str().unwrap_or_default().to_string();
        let file = |key: &str| {
            let p = entry[key].as_str().unwrap_or_default();
            Path::new(&dir).join(Path::new(p).file_name().unwrap_or_default())
        };
        let s = stream::open(&file("path"), None).expect("stream parses");
        let reference = std::fs::read(file("ref")).expect("reference readable");
        let mut decoded = Vec::new();
        let run = swdecode::decode_with(&s, 2, None, &mut |f| decoded.extend_from_slice(f))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            run.frames,
            entry["total_frames"].as_u64().unwrap_or(0),
            "{name}"
        );
        assert!(
            decoded == reference,
            "{name}: FFmpeg baseline differs from the reference"
        );
        checked += 1;
    }
    assert!(checked > 0);
}
