//! The vendors' own checkers for the chat payloads we emit (Slack, Microsoft Teams,
//! Discord, Google Chat, Mattermost): `tests/vendor/check_chat.py`, run in the Python venv
//! that `tests/vendor/setup.sh` builds from the pinned `tests/vendor/requirements.txt`.
//! What each format's check enforces, and where each limit comes from, is in that
//! script's docstring.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Checks one request body of a chat `format` (`slack`, `msteams`, `discord`,
/// `googlechat` or `mattermost`) with the vendor checker: `Ok` when it passes, or
/// `Err` with the checker's output, one problem a line.
///
/// The first call in a test process builds the venv if it is missing or stale (a minute
/// at most, needs PyPI; later processes find it done); a failing setup panics with its
/// output. Blocking: it runs a Python process (well under a second).
pub fn check_chat(format: &str, body: &[u8]) -> Result<(), String> {
    let python = venv().join("bin/python");
    let script = repo_root().join("tests/vendor/check_chat.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .arg(format)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("vendor harness: starting {}: {e}", python.display()));
    // The checker reads all of stdin before it writes anything, so writing the whole
    // body before reading its output cannot deadlock on full pipes.
    let mut stdin = child
        .stdin
        .take()
        .expect("vendor harness: the checker's stdin is piped");
    stdin.write_all(body).unwrap_or_else(|e| {
        panic!(
            "vendor harness: writing the body to {}: {e}",
            script.display()
        )
    });
    drop(stdin);
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("vendor harness: waiting for {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) if stdout.trim() == "ok" => Ok(()),
        Some(1) => Err([stdout.trim_end(), stderr.trim_end()]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("\n")),
        _ => panic!(
            "vendor harness: {} {format} did not run as a checker ({}):\n{stdout}{stderr}",
            script.display(),
            output.status
        ),
    }
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `$CARGO_TARGET_DIR/vendor-venv` (relative to the package root) or the package's
/// `target/vendor-venv`, set up once per test process.
fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let root = repo_root();
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) if !dir.is_empty() => root.join(dir),
            _ => root.join("target"),
        };
        let venv = target.join("vendor-venv");
        let setup = root.join("tests/vendor/setup.sh");
        let output = Command::new("bash")
            .arg(&setup)
            .arg(&venv)
            .current_dir(root)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("vendor harness: running bash {}: {e}", setup.display()));
        if !output.status.success() {
            panic!(
                "vendor harness: {} {} failed ({}):\n{}{}",
                setup.display(),
                venv.display(),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        venv
    })
}

/// The checker on its own samples, as `tests/vendor/selftest.sh` runs them: every
/// `<format>-ok.json` passes, every `<format>-bad-<what>.json` is refused with the line
/// `samples/refusals.tsv` expects for it.
#[test]
fn samples_pass_or_are_refused_for_their_reason() {
    let samples = repo_root().join("tests/vendor/samples");
    let refusals_path = samples.join("refusals.tsv");
    let refusals = std::fs::read_to_string(&refusals_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", refusals_path.display()));
    let mut names: Vec<PathBuf> = std::fs::read_dir(&samples)
        .unwrap_or_else(|e| panic!("listing {}: {e}", samples.display()))
        .map(|entry| {
            entry
                .expect("reading an entry of tests/vendor/samples")
                .path()
        })
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    names.sort();
    assert!(
        names.len() >= 10,
        "too few samples in {}",
        samples.display()
    );
    for path in names {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a UTF-8 sample name");
        let (format, kind) = name
            .split_once('-')
            .expect("samples are named <format>-<kind>");
        let body =
            std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let result = check_chat(format, &body);
        if kind == "ok" {
            assert_eq!(result, Ok(()), "{name} should pass");
            continue;
        }
        assert!(
            kind.starts_with("bad-"),
            "{name}: not <format>-ok or <format>-bad-<what>"
        );
        let expected = refusals
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix('\t'))
            .unwrap_or_else(|| panic!("{name} has no line in {}", refusals_path.display()));
        match result {
            Err(problems) => assert!(
                problems.contains(expected),
                "{name} was refused, but not with {expected:?}:\n{problems}"
            ),
            Ok(()) => panic!("{name} should be refused with {expected:?}"),
        }
    }
}
