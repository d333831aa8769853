//! `kubecur setup tags`: activates the cost allocation tags kubecur reads (Cost Explorer, us-east-1).
//! CloudFormation has no resource for this, so SAM users run it once after deploying.

use crate::doctor::mapping;
use crate::CliError;
use clap::{Args, Subcommand};
use kubecur_shared::deployment::TagSetup;
use kubecur_shared::domain::doctor::{backfill_from, today, wanted_tag_keys, TagState};

#[derive(Debug, Args)]
pub struct SetupArgs {
    #[command(subcommand)]
    pub command: SetupCommand,
}

#[derive(Debug, Subcommand)]
pub enum SetupCommand {
    /// Show, and with --apply activate, the cost allocation tags kubecur reads. Dry run by default.
    Tags(TagsArgs),
}

#[derive(Debug, Args)]
pub struct TagsArgs {
    /// Activate the inactive keys (and start the --backfill). Without it nothing is changed.
    #[arg(long)]
    pub apply: bool,
    /// With --apply, also backfill the activation from the first day of this month (the current
    /// month or one of the twelve before).
    #[arg(long, value_name = "YYYY-MM")]
    pub backfill: Option<String>,
    /// Read a concept from other tag keys, as for `allocate`; those keys are activated instead. Repeatable.
    #[arg(long = "tag-key", value_name = "CONCEPT=KEY[,KEY]")]
    pub tag_keys: Vec<String>,
}

pub async fn run(args: SetupArgs) -> Result<(), CliError> {
    match args.command {
        SetupCommand::Tags(args) => tags(args).await,
    }
}

async fn tags(args: TagsArgs) -> Result<(), CliError> {
    let keys = wanted_tag_keys(&mapping(&args.tag_keys)?);
    // A bad month is refused before any AWS call.
    let from = args
        .backfill
        .as_deref()
        .map(|month| backfill_from(month, today(chrono::Utc::now())))
        .transpose()
        .map_err(CliError::Usage)?;
    apply(&keys, args.apply, from.as_deref()).await
}

/// Without the feature `aws`: the arguments were checked; the rebuild is named.
#[cfg(not(feature = "aws"))]
async fn apply(_keys: &[String], _apply: bool, _from: Option<&str>) -> Result<(), CliError> {
    Err(CliError::not_built("kubecur setup tags"))
}

#[cfg(feature = "aws")]
async fn apply(keys: &[String], apply: bool, from: Option<&str>) -> Result<(), CliError> {
    use kubecur_shared::deployment::aws::{load_config, AwsDeployment};
    let config = load_config(None).await;
    let tags = AwsDeployment::new(&config, std::env::var_os("AWS_ENDPOINT_URL").is_some());
    let setup = kubecur_shared::deployment::setup_tags(&tags, keys, apply, from)
        .await
        .map_err(|error| CliError::Failed(format!("{error} → fix: {}", error.fix())))?;
    print!("{}", render(&setup, apply, from));
    if setup.refused.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "AWS refused to activate {} key(s)",
            setup.refused.len()
        )))
    }
}

/// One line per key, then what was (or would be) done.
#[cfg_attr(not(feature = "aws"), allow(dead_code))]
pub fn render(setup: &TagSetup, applied: bool, backfill: Option<&str>) -> String {
    let mut out = String::new();
    for (key, state) in &setup.states {
        let line = match state {
            TagState::Active => format!("✔ {key}: active\n"),
            TagState::Inactive if setup.activated.contains(key) => {
                format!("✔ {key}: inactive → activated\n")
            }
            TagState::Inactive => match setup.refused.iter().find(|(k, _)| k == key) {
                Some((_, why)) => format!("✘ {key}: inactive, AWS refused to activate it: {why}\n"),
                None => format!("✘ {key}: inactive → would activate (run with --apply)\n"),
            },
            TagState::NotSeen => format!(
                "✘ {key}: not yet seen by AWS, cannot be activated yet → re-run after AWS has seen it, up to 24 h after first use\n"
            ),
        };
        out.push_str(&line);
    }
    match (backfill, applied, &setup.backfill) {
        (Some(from), true, Some(status)) => {
            out.push_str(&format!("backfill from {from}: {status}\n"))
        }
        (Some(from), false, _) => out.push_str(&format!(
            "backfill from {from}: would be requested (run with --apply)\n"
        )),
        _ => {}
    }
    if !applied {
        out.push_str("dry run: nothing was changed\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(states: &[(&str, TagState)]) -> TagSetup {
        TagSetup {
            states: states.iter().map(|(k, s)| (k.to_string(), *s)).collect(),
            activated: Vec::new(),
            refused: Vec::new(),
            backfill: None,
        }
    }

    #[test]
    fn a_dry_run_says_what_it_would_do_per_key() {
        let text = render(
            &setup(&[
                ("kubernetes_namespace", TagState::Active),
                ("kubernetes_pod", TagState::Inactive),
                ("kubernetes_container", TagState::NotSeen),
            ]),
            false,
            Some("2026-06-01T00:00:00Z"),
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "✔ kubernetes_namespace: active");
        assert_eq!(
            lines[1],
            "✘ kubernetes_pod: inactive → would activate (run with --apply)"
        );
        assert!(lines[2].contains("up to 24 h after first use"), "{text}");
        assert!(lines[3].contains("would be requested"), "{text}");
        assert_eq!(lines[4], "dry run: nothing was changed");
    }

    #[test]
    fn an_applied_run_shows_activated_and_refused_keys() {
        let mut done = setup(&[
            ("kubernetes_pod", TagState::Inactive),
            ("kubernetes_container", TagState::Inactive),
        ]);
        done.activated = vec!["kubernetes_pod".into()];
        done.refused = vec![(
            "kubernetes_container".into(),
            "TagKeysNotFound: gone".into(),
        )];
        done.backfill = Some("PROCESSING".into());
        let text = render(&done, true, Some("2026-06-01T00:00:00Z"));
        assert!(
            text.contains("✔ kubernetes_pod: inactive → activated"),
            "{text}"
        );
        assert!(
            text.contains("✘ kubernetes_container: inactive, AWS refused to activate it: TagKeysNotFound: gone"),
            "{text}"
        );
        assert!(
            text.contains("backfill from 2026-06-01T00:00:00Z: PROCESSING"),
            "{text}"
        );
        assert!(!text.contains("dry run"), "{text}");
    }
}
