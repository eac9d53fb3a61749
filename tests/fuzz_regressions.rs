//! Replays, through the same harness as the fuzz targets (fuzz/harness.rs),
//! every input that once crashed one (fuzz/regressions/TARGET/) and the
//! seeds the fuzzing starts from (fuzz/seeds/TARGET/), so a fixed parser
//! bug stays fixed without cargo-fuzz or a nightly compiler.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;

fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

fn replay(kind: &str) -> usize {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind);
    let mut n = 0;
    for dir in inputs(&base) {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let Some((_, run)) = harness::TARGETS.iter().find(|(t, _)| *t == name) else {
            panic!("{}: no fuzz target {name:?}", dir.display());
        };
        for file in inputs(&dir) {
            // Printed before the run: a failing test shows which input.
            eprintln!("{}", file.display());
            run(&std::fs::read(&file).unwrap());
            n += 1;
        }
    }
    n
}

#[test]
fn crashes_found_by_fuzzing_stay_fixed() {
    assert!(replay("regressions") > 0);
}

#[test]
fn fuzzing_seeds_pass_the_harness() {
    let n = replay("seeds");
    // Every target has seeds.
    for (t, _) in harness::TARGETS {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/seeds")
            .join(t);
        assert!(!inputs(&dir).is_empty(), "no seeds for {t}");
    }
    assert!(n >= harness::TARGETS.len());
}
