// Records the git commit capsa was built from for `capsa --version`, and
// relinks when the hot-function order the Makefile's release build hands
// the linker changes (scripts/hot-symbols.py).
fn main() {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CAPSA_COMMIT={commit}");
    println!("cargo:rerun-if-changed=build.rs");
    // Rerun when HEAD moves: HEAD itself and the branch it names (loose or
    // packed), not every branch of the repository. Where they are is git's
    // to say: in a worktree `.git` is a file and they live elsewhere. A
    // path that does not exist would make cargo rerun this (and rebuild
    // capsa) on every build, so only existing ones are watched.
    let branch = git(&["rev-parse", "--symbolic-full-name", "HEAD"]).filter(|b| b != "HEAD");
    for what in ["HEAD", "packed-refs"].into_iter().chain(branch.as_deref()) {
        if let Some(p) = git(&["rev-parse", "--git-path", what])
            && std::path::Path::new(&p).exists()
        {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    // One list per target (scripts/hot-symbols.TARGET.txt).
    for entry in std::fs::read_dir("scripts").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("hot-symbols.") && name.ends_with(".txt") {
            println!("cargo:rerun-if-changed=scripts/{name}");
        }
    }
}
