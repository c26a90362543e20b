//! `info`: what this host allows the sandbox, and what the builder will therefore do. Exits
//! 1 with the fix named when user namespaces are unavailable, since no build can run then.

use super::exit::{FAILURE, SUCCESS};
use super::output::result_line;
use super::Context;

#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(context: &Context, args: InfoArgs) -> anyhow::Result<i32> {
    let info = runtime::host_info();
    if args.json {
        let mut value = serde_json::to_value(&info)?;
        value["store"] = serde_json::json!(context.store);
        result_line(serde_json::to_string_pretty(&value)?)?;
    } else {
        result_line(&info)?;
        result_line(format_args!("store: {}", context.store.display()))?;
    }
    if let Some(fix) = runtime::hostinfo::userns_fix() {
        eprintln!("error: the sandbox cannot run on this host: {fix}");
        return Ok(FAILURE);
    }
    Ok(SUCCESS)
}
