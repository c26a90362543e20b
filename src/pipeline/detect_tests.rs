//! Detection on trees made here, with the shipped badgers' rules (read from their
//! `badger.yaml`) and with rules as fake badger manifests would give them.

use super::*;
use std::os::unix::fs::symlink;

fn rule(badger: &str, order: i64, files: &[&str]) -> DetectRule {
    DetectRule {
        badger: badger.to_string(),
        store_name: format!("badgers/{badger}"),
        order,
        files: files.iter().map(ToString::to_string).collect(),
    }
}

/// The shipped badgers' rules, read from their `badgers/NAME/badger.yaml`, in reverse
/// name order that `sort_rules` puts right.
fn shipped() -> Vec<DetectRule> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("badgers");
    let mut rules: Vec<DetectRule> = crate::pipeline::badger_stack::SHIPPED_BADGERS
        .iter()
        .rev()
        .filter_map(|name| {
            let manifest =
                crate::manifest::BadgerManifest::load(&dir.join(name).join("badger.yaml")).unwrap();
            let detect = manifest.detect?;
            let files: Vec<&str> = detect.files.iter().map(String::as_str).collect();
            Some(rule(&manifest.name, detect.order, &files))
        })
        .collect();
    sort_rules(&mut rules);
    rules
}

fn tree(files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in files {
        let path = dir.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "x").unwrap();
    }
    dir
}

fn chosen(dir: &Path) -> String {
    detect(dir, &shipped(), Vec::new()).unwrap().chose_line()
}

#[test]
fn rules_run_by_order_then_name() {
    let names: Vec<_> = shipped().into_iter().map(|r| r.badger).collect();
    assert_eq!(
        names,
        ["go", "nodejs", "python", "ruby", "php", "java", "static"]
    );
    let mut tied = vec![
        rule("b", 5, &["x"]),
        rule("a", 5, &["x"]),
        rule("c", 1, &["x"]),
    ];
    sort_rules(&mut tied);
    let names: Vec<_> = tied.into_iter().map(|r| r.badger).collect();
    assert_eq!(names, ["c", "a", "b"]);
}

#[test]
fn one_app_per_language() {
    let go = tree(&["go.mod", "main.go"]);
    assert_eq!(chosen(go.path()), "auto chose go (go.mod found)");
    let node = tree(&["package.json", "server.js"]);
    assert_eq!(
        chosen(node.path()),
        "auto chose nodejs (package.json found)"
    );
    let python = tree(&["setup.py", "app.py"]);
    assert_eq!(chosen(python.path()), "auto chose python (setup.py found)");
    let ruby = tree(&["Gemfile", "config.ru"]);
    assert_eq!(chosen(ruby.path()), "auto chose ruby (Gemfile found)");
    let php = tree(&["index.php"]);
    assert_eq!(chosen(php.path()), "auto chose php (index.php found)");
    let java = tree(&["pom.xml", "src/main/java/App.java"]);
    assert_eq!(chosen(java.path()), "auto chose java (pom.xml found)");
    let site = tree(&["public/index.html", "public/style.css"]);
    assert_eq!(
        chosen(site.path()),
        "auto chose static (public/index.html found)"
    );
}

#[test]
fn an_ambiguous_tree_takes_the_first_and_names_the_others() {
    let both = tree(&["package.json", "requirements.txt", "index.html"]);
    let detected = detect(both.path(), &shipped(), Vec::new()).unwrap();
    assert_eq!(
        detected.chose_line(),
        "auto chose nodejs (package.json found)"
    );
    assert_eq!(
        detected.also_line().unwrap(),
        "python (requirements.txt), static (index.html); set badger: to choose"
    );
    let one = tree(&["go.mod"]);
    assert_eq!(
        detect(one.path(), &shipped(), Vec::new())
            .unwrap()
            .also_line(),
        None
    );
}

#[test]
fn an_unknown_tree_lists_what_was_looked_for() {
    let unknown = tree(&["Makefile", "main.c"]);
    let err = detect(unknown.path(), &shipped(), vec!["badgers/shell".into()]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "badger \"auto\": no badger's detect rule matches the source; looked for (in this order): \
         go (go.mod), nodejs (package.json), python (requirements.txt, pyproject.toml, setup.py, \
         Pipfile, Pipfile.lock, poetry.lock), ruby (Gemfile), php (composer.json, index.php), \
         java (pom.xml), static (index.html, public/index.html); shipped badgers not in the store (make one with \
         `solum-build badger build badgers/NAME`): badgers/shell; name the badger in the app file \
         (`badger: NAME` or `languagepack: NAME`) or with --badger"
    );
    let err = detect(unknown.path(), &[], Vec::new()).unwrap_err();
    assert!(matches!(err, DetectError::NoRules { .. }), "{err}");
    assert!(err
        .to_string()
        .contains("no badger in the store has a detect rule"));
}

#[test]
fn symlinks_and_folders_do_not_mark_a_language() {
    let dir = tree(&["real/package.json", "inside.txt"]);
    let root = dir.path();
    // Out of the source, to a file of the source, through a symlinked folder, a folder.
    symlink("/etc/passwd", root.join("package.json")).unwrap();
    symlink("inside.txt", root.join("go.mod")).unwrap();
    symlink("real", root.join("public")).unwrap();
    std::fs::write(root.join("real/index.html"), "x").unwrap();
    std::fs::create_dir(root.join("requirements.txt")).unwrap();
    std::fs::write(root.join("setup.py/"), "").unwrap_err();
    let err = detect(root, &shipped(), Vec::new()).unwrap_err();
    assert!(matches!(err, DetectError::NoMatch { .. }), "{err}");
    // A regular file beside them counts.
    std::fs::write(root.join("index.html"), "x").unwrap();
    assert_eq!(chosen(root), "auto chose static (index.html found)");
}

#[test]
fn a_rule_naming_an_impossible_file_matches_nothing_and_stops_nothing() {
    let dir = tree(&["go.mod"]);
    let long_component = "x".repeat(300);
    let long_path = vec!["d"; 3000].join("/");
    let mut rules = shipped();
    rules.insert(0, rule("hostile", 0, &[&long_component, &long_path]));
    let detected = detect(dir.path(), &rules, Vec::new()).unwrap();
    assert_eq!(detected.chose_line(), "auto chose go (go.mod found)");
}
