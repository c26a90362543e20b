//! `info`: what this host allows the sandbox, which isolation level `auto` picks here and
//! why each stronger level was refused (the syscall, capability or sysctl), the steps the
//! chosen level does without, and what the builder will therefore do. Exits 1 only when
//! no level works at all: neither `userns` nor `chroot`, and no container around this
//! process for `none`.

use super::exit::{FAILURE, SUCCESS};
use super::output::result_line;
use super::Context;
use runtime::levels::LevelsReport;
use std::fmt::Write as _;

#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(context: &Context, args: InfoArgs) -> anyhow::Result<i32> {
    let info = runtime::host_info();
    let mut levels = runtime::levels::probe(&runtime::self_exe());
    // The level probe runs on a prepared directory; overlay is the host probe's finding.
    if let Some(userns) = levels
        .levels
        .iter_mut()
        .find(|p| p.level == runtime::Isolation::Userns && p.works)
    {
        if let Some(why) = &info.overlay_error {
            userns.degradations.push(format!(
                "overlay: refused ({why}), so builds copy the tree into a prepared directory"
            ));
        }
    }
    if args.json {
        let mut value = serde_json::to_value(&info)?;
        value["store"] = serde_json::json!(context.store);
        value["isolation"] = serde_json::to_value(&levels)?;
        result_line(serde_json::to_string_pretty(&value)?)?;
    } else {
        result_line(&info)?;
        result_line(format_args!("store: {}", context.store.display()))?;
        result_line(describe_levels(&levels).trim_end())?;
    }
    // `none` counts only in a container (a build refuses it elsewhere: there is no
    // boundary around a build in place on a bare host).
    let in_container = !crate::pipeline::container_signs::this_container_signs().is_empty();
    let Some(chosen) = levels
        .chosen
        .filter(|level| *level != runtime::Isolation::None || in_container)
    else {
        eprintln!(
            "error: no isolation level works on this host, and --isolation none needs a container whose image is the badger"
        );
        if let Some(fix) = runtime::hostinfo::userns_fix() {
            eprintln!("fix: turn on the rootless sandbox (userns): {fix}");
        }
        return Ok(FAILURE);
    };
    if chosen != runtime::Isolation::Userns {
        if let Some(fix) = runtime::hostinfo::userns_fix() {
            eprintln!("warning: the rootless sandbox (userns) cannot run on this host: {fix}");
        }
    }
    Ok(SUCCESS)
}

/// The levels as text: the chosen one first, then each level with what the probe found.
fn describe_levels(levels: &LevelsReport) -> String {
    let mut text = String::new();
    let chosen = match levels.chosen {
        None => "none works".to_string(),
        // A build does not go in place by itself: only the user knows the container's
        // image is the badger.
        Some(runtime::Isolation::None) => {
            "none (only `--isolation none` is left: a build with auto stops and says so)"
                .to_string()
        }
        Some(level) => format!("{level} (what auto picks: the strongest level that works)"),
    };
    let _ = writeln!(text, "isolation:                  {chosen}");
    for probe in &levels.levels {
        let state = match (&probe.reason, probe.works) {
            (None, true) => "works".to_string(),
            (Some(reason), true) => reason.clone(),
            (reason, false) => format!(
                "refused: {}",
                reason.as_deref().unwrap_or("no reason given")
            ),
        };
        let _ = writeln!(text, "  {:<26}{state}", format!("{}:", probe.level));
        for degradation in &probe.degradations {
            let _ = writeln!(text, "    degraded:               {degradation}");
        }
    }
    for what in &levels.chroot_cannot_prevent {
        let _ = writeln!(text, "  chroot cannot prevent:    {what}");
    }
    text
}
