//! The `vigil` command line: argument parsing and one file per subcommand.
//! Exit codes: 0 success, 1 a failed check or run (`audit verify` on a
//! broken chain, a bad config, a rule that cannot load), 2 bad usage.

mod audit;
mod baseline;
mod build;
mod connectors;
mod inspect;
mod normalize;
mod operate;
mod pack;
mod progress;
mod run;
mod scaffold;
pub mod setup;
mod test;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vigil",
    version,
    about = "Runs identity-event detection and remediation rules compiled to WebAssembly"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Process events through the rules. With --events, a finite JSON Lines
    /// stream (a file, or - for stdin); otherwise the config's sources.
    Run {
        /// vigil.toml; without it, the built-in pack runs audit-only.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// A JSON Lines file of Okta or Entra events, or - for stdin.
        #[arg(long, short)]
        events: Option<PathBuf>,
    },
    /// Print what rules see: each event of a JSON Lines file (or - for
    /// stdin) as one JSON line, in the WIT event's shape; rejected lines and
    /// dropped fields on stderr, with their line number.
    Normalize {
        /// A JSON Lines file of Okta, Entra or Azure Monitor records, or -.
        file: PathBuf,
    },
    /// Rules.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Show what a rule component declares: id, version, subscriptions,
    /// requested actions and WIT version.
    Inspect {
        /// The rule's .wasm component.
        rule: PathBuf,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Temporary actions (suspensions, IP blocks) and their undo.
    Actions {
        #[command(subcommand)]
        command: ActionsCommand,
    },
    /// Actions parked for an operator's approval.
    Approvals {
        #[command(subcommand)]
        command: ApprovalsCommand,
    },
    /// Circuit breakers tripped by blast-radius budgets.
    Breaker {
        #[command(subcommand)]
        command: BreakerCommand,
    },
    /// The known-good MFA configuration of the identity providers: capture
    /// it, compare with it, approve a new one.
    Baseline {
        #[command(subcommand)]
        command: BaselineCommand,
    },
    /// Vendor rule packs: build, sign, publish, verify, install, upgrade,
    /// roll back.
    Pack {
        #[command(subcommand)]
        command: PackCommand,
    },
    /// The connectors that carry out actions.
    Connectors {
        #[command(subcommand)]
        command: ConnectorsCommand,
    },
    /// Create a rule project (source, fixture, vigil.toml, README).
    New {
        /// The rule's name: lower-case letters, digits and dashes.
        name: String,
        #[arg(long, value_enum, default_value = "rust")]
        lang: Lang,
        /// The directory to create the project in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Run rule test cases written as data (*.test.toml files).
    Test {
        /// Test files, or directories searched for *.test.toml (default: .).
        paths: Vec<PathBuf>,
    },
    /// Build a rule project (Rust, Python or JavaScript) into a component.
    Build {
        /// The project directory.
        path: PathBuf,
        /// Where to write the component (default PATH/build/<name>.wasm).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

/// A language rules can be written in.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

impl Lang {
    fn display(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
        }
    }

    fn build_tool(self) -> &'static str {
        match self {
            Lang::Rust => "needs the wasm32-wasip2 Rust target",
            Lang::Python => "needs componentize-py: `pip install componentize-py==0.25.1`",
            Lang::Js => {
                "needs componentize-js: `npm install -g @bytecodealliance/componentize-js@0.23.0`"
            }
        }
    }

    fn test_line(self) -> &'static str {
        match self {
            Lang::Rust => "- Unit tests, natively against the SDK's mock host: `cargo test`.",
            Lang::Python | Lang::Js => "",
        }
    }
}

#[derive(Subcommand)]
enum RulesCommand {
    /// List the rules a configuration loads, with their modes and grants.
    List {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Lift a rule's quarantine (it gets events again from the next start).
    Release {
        rule: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Who releases it, for the audit log (default $USER).
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Subcommand)]
enum ActionsCommand {
    /// Active temporary actions and when they expire.
    List {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Undo one temporary action now, before it expires.
    Undo {
        /// The id `vigil actions list` shows.
        id: i64,
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Subcommand)]
enum ApprovalsCommand {
    /// Pending approvals and when they expire.
    List {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Approve one: it goes through the policy gate again and executes.
    Approve {
        /// The action id `vigil approvals list` shows.
        id: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long)]
        by: Option<String>,
    },
    /// Reject one: it is never executed.
    Reject {
        id: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Subcommand)]
enum BreakerCommand {
    /// Tripped breakers.
    List {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Reset a rule's breaker: it enforces again.
    Reset {
        rule: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Subcommand)]
enum BaselineCommand {
    /// Read the MFA configuration through the connectors and store it as a
    /// new version (not approved unless --approve).
    Capture {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Who captures it, for the audit log (default $USER).
        #[arg(long)]
        by: Option<String>,
        /// Approve the captured version as known-good at once.
        #[arg(long)]
        approve: bool,
    },
    /// What changed since the approved baseline, in words; exit 1 when
    /// something weakens MFA.
    Diff {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print JSON instead of sentences.
        #[arg(long)]
        json: bool,
    },
    /// Make a version (default: the configuration as it is now) the
    /// known-good baseline.
    Approve {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// A version `vigil baseline list` shows.
        #[arg(long)]
        version: Option<i64>,
        /// Who approves it, for the audit log (default $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// The stored versions and which one is known-good.
    List {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// A version (default: the approved ones) as JSON.
    Export {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[arg(long)]
        version: Option<i64>,
    },
}

#[derive(Subcommand)]
enum PackCommand {
    /// Write a publisher key pair: PATH (private, 0600) and PATH.pub.
    Keygen { out: PathBuf },
    /// Start a pack: DIR/pack.toml.
    Init {
        #[arg(default_value = ".")]
        dir: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        publisher: String,
    },
    /// Build DIR/pack.toml into a pack (a directory, or a .vpack file).
    Build {
        /// The pack source directory (default: .).
        dir: Option<PathBuf>,
        /// Where to write it (default DIR/dist; a path ending .vpack writes
        /// one file).
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Build the rules compiled into this binary instead.
        #[arg(long, conflicts_with = "dir")]
        builtin: bool,
    },
    /// Sign a built pack (directory or .vpack) with a publisher key.
    Sign {
        pack: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// Run every check an install makes: signature, digests, components.
    Verify {
        /// A pack directory, .vpack file or OCI reference.
        pack: String,
        /// Trusted public keys (default: the config's [packs] trusted_keys).
        #[arg(long)]
        key: Vec<PathBuf>,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Push a pack to an OCI registry (REGISTRY/REPO:TAG).
    Push {
        pack: PathBuf,
        reference: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Pull a pack from an OCI registry, by tag or @sha256: digest.
    Pull {
        reference: String,
        /// A directory, or a path ending .vpack.
        #[arg(long, short)]
        out: PathBuf,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Verify and install a pack (directory, .vpack or OCI reference) into
    /// [packs] dir; prints what its rules may do and grants nothing.
    Install {
        pack: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// The built-in pack and the installed packs.
    List {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Let [[rules]] grants apply to the action kinds an upgrade added.
    Accept {
        name: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Make the previously current version of a pack current again.
    Rollback {
        name: String,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Remove an installed pack, or one of its versions that is not current.
    Remove {
        name: String,
        #[arg(long)]
        version: Option<String>,
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ConnectorsCommand {
    /// Check every configured connector's credentials and reachability
    /// with read-only calls, and show which connector serves which action.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the hash chain and the head file; with --pubkey every
    /// checkpoint's and the head's signature; with --witness that every
    /// witnessed checkpoint is still in the log. Several logs: a cluster's
    /// replica logs, one per replica (each named by its checkpoints); with
    /// --nats, that each replica's newest published checkpoint is still in
    /// its log.
    Verify {
        /// The audit log (JSON Lines); several: one log per replica.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// A public key (PEM, from `vigil audit keygen`); repeat for keys
        /// used before a rotation, or by other replicas.
        #[arg(long)]
        pubkey: Vec<PathBuf>,
        /// A witness file ([audit] witness_file) to compare with the log
        /// (one log only).
        #[arg(long)]
        witness: Option<PathBuf>,
        /// The NATS server whose JetStream stream holds the checkpoints the
        /// replicas published (on vigil.audit.<replica>).
        #[arg(long, value_name = "URL")]
        nats: Option<String>,
        /// The stream holding the published checkpoints (with --nats).
        #[arg(long, value_name = "NAME", default_value = crate::audit::nats::DEFAULT_STREAM, requires = "nats")]
        stream: String,
    },
    /// Accept a log whose head file is missing or no longer fits (records
    /// cut, key changed), after keeping a copy as evidence: appends a
    /// `resealed` record saying who, why and what the old head said, then
    /// writes a new head. Never changes existing records; refuses a log
    /// whose chain is damaged.
    Reseal {
        /// The audit log.
        file: PathBuf,
        /// Who reseals (recorded).
        #[arg(long)]
        by: String,
        /// Why (recorded).
        #[arg(long)]
        reason: String,
        /// vigil.toml, for its [audit] signing key and witness.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Write a new ed25519 key pair: FILE (private, 0600) and FILE.pub.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Run { config, events } => run::run(config.as_deref(), events.as_deref()),
        Command::Rules {
            command: RulesCommand::List { config },
        } => inspect::list(config.as_deref()),
        Command::Rules {
            command: RulesCommand::Release { rule, config, by },
        } => operate::rules_release(config.as_deref(), &rule, by.as_deref()),
        Command::Actions { command } => match command {
            ActionsCommand::List { config } => operate::actions_list(config.as_deref()),
            ActionsCommand::Undo { id, config, by } => {
                operate::actions_undo(config.as_deref(), id, by.as_deref())
            }
        },
        Command::Approvals { command } => match command {
            ApprovalsCommand::List { config } => operate::approvals_list(config.as_deref()),
            ApprovalsCommand::Approve { id, config, by } => {
                operate::approvals_approve(config.as_deref(), &id, by.as_deref())
            }
            ApprovalsCommand::Reject { id, config, by } => {
                operate::approvals_reject(config.as_deref(), &id, by.as_deref())
            }
        },
        Command::Breaker { command } => match command {
            BreakerCommand::List { config } => operate::breaker_list(config.as_deref()),
            BreakerCommand::Reset { rule, config, by } => {
                operate::breaker_reset(config.as_deref(), &rule, by.as_deref())
            }
        },
        Command::Normalize { file } => normalize::normalize(&file),
        Command::Inspect { rule } => inspect::inspect(&rule),
        Command::Audit { command } => match command {
            AuditCommand::Verify {
                files,
                pubkey,
                witness,
                nats,
                stream,
            } => audit::verify(
                &files,
                &pubkey,
                witness.as_deref(),
                nats.as_deref().map(|url| (url, stream.as_str())),
            ),
            AuditCommand::Reseal {
                file,
                by,
                reason,
                config,
            } => audit::reseal(&file, &by, &reason, config.as_deref()),
            AuditCommand::Keygen { out } => audit::keygen(&out),
        },
        Command::Connectors {
            command: ConnectorsCommand::Check { config },
        } => connectors::check(&config),
        Command::Baseline { command } => match command {
            BaselineCommand::Capture {
                config,
                by,
                approve,
            } => baseline::capture(config.as_deref(), by.as_deref(), approve),
            BaselineCommand::Diff { config, json } => baseline::diff(config.as_deref(), json),
            BaselineCommand::Approve {
                config,
                version,
                by,
            } => baseline::approve(config.as_deref(), version, by.as_deref()),
            BaselineCommand::List { config } => baseline::list(config.as_deref()),
            BaselineCommand::Export { config, version } => {
                baseline::export(config.as_deref(), version)
            }
        },
        Command::Pack { command } => match command {
            PackCommand::Keygen { out } => pack::keygen(&out),
            PackCommand::Init {
                dir,
                name,
                publisher,
            } => pack::init(&dir, &name, &publisher),
            PackCommand::Build { dir, out, builtin } => {
                pack::build(dir.as_deref(), out.as_deref(), builtin)
            }
            PackCommand::Sign { pack: p, key } => pack::sign(&p, &key),
            PackCommand::Verify {
                pack: p,
                key,
                config,
            } => pack::verify(&p, &key, config.as_deref()),
            PackCommand::Push {
                pack: p,
                reference,
                config,
            } => pack::push(&p, &reference, config.as_deref()),
            PackCommand::Pull {
                reference,
                out,
                config,
            } => pack::pull(&reference, &out, config.as_deref()),
            PackCommand::Install { pack: p, config } => pack::install(&p, config.as_deref()),
            PackCommand::List { config } => pack::list(config.as_deref()),
            PackCommand::Accept { name, config } => pack::accept(&name, config.as_deref()),
            PackCommand::Rollback { name, config } => pack::rollback(&name, config.as_deref()),
            PackCommand::Remove {
                name,
                version,
                config,
            } => pack::remove(&name, version.as_deref(), config.as_deref()),
        },
        Command::New { name, lang, dir } => scaffold::new(&name, lang, &dir),
        Command::Build { path, out } => build::build(&path, out.as_deref()),
        Command::Test { paths } => test::test(&paths),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr (stdout carries summaries); `VIGIL_LOG` or `RUST_LOG`
/// set the filter, default `info`.
fn init_logging() {
    let filter = std::env::var("VIGIL_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
