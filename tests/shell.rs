//! Shell integration through the real binary: completion scripts every shell can load, and man
//! pages `man` can render, as the README shows them.

mod binary;
mod hermetic;

use binary::preflight;

fn stdout(args: &[&str]) -> String {
    let output = preflight().args(args).output().unwrap();
    assert!(output.status.success(), "{args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn completions_name_every_command_and_bash_loads_them() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = stdout(&["completions", shell]);
        for word in ["serve", "report", "baseline", "html", "allow-var"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    // The README's line: the script bash sources must be valid bash.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("preflight");
    std::fs::write(&file, stdout(&["completions", "bash"])).unwrap();
    let checked = std::process::Command::new("bash")
        .arg("-n")
        .arg(&file)
        .status()
        .unwrap();
    assert!(checked.success(), "bash -n refuses the completion script");
    let refused = preflight().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
}

#[test]
fn man_pages_render_for_preflight_and_each_command() {
    let page = stdout(&["man"]);
    assert!(page.contains(".TH preflight 1"), "{page}");
    for command in ["run", "check", "serve", "report", "merge", "completions"] {
        assert!(page.contains(command), "the page lists {command}");
    }
    let serve = stdout(&["man", "serve"]);
    assert!(serve.contains(".TH preflight-serve 1"), "{serve}");
    assert!(serve.contains("shutdown\\-grace"), "{serve}");
    // Rendered as a reader sees it (groff, as `man -l` would): no roff errors, the text there.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("preflight-serve.1");
    std::fs::write(&file, &serve).unwrap();
    let rendered = std::process::Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&file)
        .output();
    if let Ok(rendered) = rendered {
        assert!(rendered.status.success(), "{rendered:?}");
        assert!(
            rendered.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&rendered.stderr)
        );
    }
    let missing = preflight().args(["man", "bogus"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
}
