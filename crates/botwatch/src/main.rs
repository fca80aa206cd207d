//! `botwatch`: the command line. Argument parsing and exit codes only; the work is in the
//! library half.

use anyhow::{Context, Result, bail};
use botwatch::config::Config;
use botwatch::output::{self, Format};
use botwatch::pipeline::{Ingestor, ReportSummary};
use botwatch_model::{Clock, SystemClock, Timestamp, parse_timestamp};
use botwatch_store::{EventQuery, GroupBy, Store, sqlite::SqliteStore};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes: 0 success; 1 error; 2 bad usage; 3 some inputs could not be ingested at all
/// (unreadable, unrecognised); 4 some feeds could not be fetched.
/// `--version`: the commit built and the date of the shipped IP → ASN data (build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BOTWATCH_COMMIT"),
    "; IP→ASN data ",
    env!("BOTWATCH_IPASN_DATA"),
    ")"
);

#[derive(Parser)]
#[command(name = "botwatch", version = VERSION, about = "Collect, normalise and measure botnet infection reports", long_about = None)]
#[command(
    after_help = "Exit codes: 0 ok · 1 error · 2 usage · 3 some inputs not ingested · 4 some feeds not fetched"
)]
struct Cli {
    /// Configuration file [default: ./botwatch.toml, else /etc/botwatch/botwatch.toml, else
    /// built-in defaults]
    #[arg(long, global = true, env = "BOTWATCH_CONFIG")]
    config: Option<PathBuf>,
    /// Log level filter (error, warn, info, debug), or RUST_LOG syntax
    #[arg(long, global = true, default_value = "warn", env = "BOTWATCH_LOG")]
    log: String,
    /// Log lines as text (coloured only when stderr is a terminal) or as JSON objects
    #[arg(long, global = true, value_enum, default_value = "text", env = "BOTWATCH_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct DbArg {
    /// SQLite database [default: store.path from config, else ./botwatch.db]
    // Global: `botwatch cases update --db X` as well as `botwatch cases --db X update`.
    #[arg(long, env = "BOTWATCH_DB", global = true)]
    db: Option<PathBuf>,
}

#[derive(Args, Clone, Default)]
struct Filters {
    /// Only this address
    #[arg(long)]
    ip: Option<std::net::IpAddr>,
    /// Only addresses inside this network
    #[arg(long)]
    cidr: Option<ipnet::IpNet>,
    /// Only this source AS number
    #[arg(long)]
    asn: Option<u32>,
    /// Only this source country (ISO code)
    #[arg(long)]
    country: Option<String>,
    /// Only this malware family (aliases allowed)
    #[arg(long)]
    family: Option<String>,
    /// Only this feed id
    #[arg(long)]
    feed: Option<String>,
    /// Only this classification.type (e.g. infected-system)
    #[arg(long = "type")]
    ty: Option<String>,
    /// From this time (RFC 3339 or YYYY-MM-DD)
    #[arg(long)]
    since: Option<String>,
    /// Before this time
    #[arg(long)]
    until: Option<String>,
    /// Only rows after this id (cursor for paging)
    #[arg(long)]
    after: Option<i64>,
    /// At most this many rows
    #[arg(long)]
    limit: Option<u64>,
}

impl Filters {
    fn query(&self, families: &botwatch_model::FamilyTable) -> Result<EventQuery> {
        let t = |s: &Option<String>| -> Result<Option<Timestamp>> {
            s.as_deref().map(|v| parse_timestamp(v).with_context(|| format!("not a time: {v:?}"))).transpose()
        };
        Ok(EventQuery {
            ip: self.ip,
            cidr: self.cidr,
            asn: self.asn,
            cc: self.country.clone(),
            family: self.family.as_deref().and_then(|f| families.canonical(f)).map(|f| f.to_string()),
            feed: self.feed.clone(),
            classification_type: self.ty.clone(),
            since: t(&self.since)?,
            until: t(&self.until)?,
            after_id: self.after,
            limit: self.limit,
        })
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Parse report files into the store (format detected unless --feed is given)
    Ingest {
        /// Report files (CSV, JSON, text; .gz and .zip are unpacked); `-` reads stdin; a
        /// MISP feed directory (or its manifest.json) reads the events its manifest lists
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Feed id (see `botwatch feeds`); detected per file when omitted
        #[arg(long)]
        feed: Option<String>,
        #[command(flatten)]
        db: DbArg,
        /// Print the per-report summary as JSON lines
        #[arg(long)]
        json: bool,
        /// No progress bar
        #[arg(long, short)]
        quiet: bool,
    },
    /// List every supported feed with its documentation link
    Feeds {
        /// JSON lines instead of a table
        #[arg(long)]
        json: bool,
        /// Only feeds whose id contains this text
        filter: Option<String>,
    },
    /// Query stored events
    Events {
        #[command(flatten)]
        filters: Filters,
        #[command(flatten)]
        db: DbArg,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Query deduplicated observations (one per IP, classification and family per window)
    Observations {
        #[command(flatten)]
        filters: Filters,
        #[command(flatten)]
        db: DbArg,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Export events for other tools
    Export {
        /// intelmq: JSON lines IntelMQ 3.5 loads as they are (flat dotted keys, raw in base64).
        /// Mapped on the way out: classification.type blocklist → blacklist; TLP CLEAR → WHITE,
        /// AMBER+STRICT → AMBER (original in extra.tlp); keys IntelMQ does not define, and
        /// values its harmonisation would refuse, go under extra.* unchanged. jsonl: the same
        /// document unmapped, plus botwatch's ids and the raw line as text. stix: a STIX 2.1
        /// bundle of indicators, malware, infrastructure and sightings for one recipient
        /// (--partner, or --tlp/--sightings/--home-addresses for a file); misp-feed: a MISP
        /// feed directory (--out). STIX and MISP ignore the event filters and pass the TLP
        /// gate: TLP:RED never leaves
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        #[command(flatten)]
        filters: Filters,
        #[command(flatten)]
        db: DbArg,
        /// Write here instead of stdout
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// misp-feed: the feed directory
        #[arg(long)]
        out: Option<PathBuf>,
        /// stix, misp-feed: export for this partner of [[partners]] (its entitlement applies)
        #[arg(long)]
        partner: Option<String>,
        /// stix, misp-feed without --partner: the highest TLP to include
        #[arg(long, default_value = "green")]
        tlp: String,
        /// stix, misp-feed without --partner: include sightings
        #[arg(long)]
        sightings: bool,
        /// stix, misp-feed without --partner: include addresses inside the constituency
        #[arg(long)]
        home_addresses: bool,
    },
    /// Sharing: publish into the TAXII collections, list partners, read the exchange log
    Share {
        #[command(subcommand)]
        cmd: ShareCmd,
    },
    /// TAXII 2.1 client: pull partners' collections, push this node's objects
    Taxii {
        #[command(subcommand)]
        cmd: TaxiiCmd,
    },
    /// The minimum security bar as a signed, versioned document shared with partners
    Bar {
        #[command(subcommand)]
        cmd: BarCmd,
    },
    /// Shell completions on stdout, e.g. `botwatch completions bash > /etc/bash_completion.d/botwatch`
    Completions { shell: clap_complete::Shell },
    /// Man pages: botwatch.1 and one page per subcommand (botwatch-ingest.1, …)
    Man {
        /// Directory to write them into
        #[arg(long, default_value = "man")]
        out: PathBuf,
    },
    /// Federated statistics: release this node's aggregates, read every node's
    Federation {
        #[command(subcommand)]
        cmd: FederationCmd,
    },
    /// Counts by family, ASN, country, day, feed or classification
    Stats {
        #[arg(long, value_enum, default_value = "family")]
        by: By,
        #[command(flatten)]
        filters: Filters,
        #[command(flatten)]
        db: DbArg,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Lines that could not be parsed, with line number, reason and raw bytes
    Rejects {
        /// Only this feed
        #[arg(long)]
        feed: Option<String>,
        /// Only this report id (see `botwatch reports`)
        #[arg(long)]
        report: Option<i64>,
        #[arg(long, default_value_t = 100)]
        limit: u64,
        #[command(flatten)]
        db: DbArg,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Ingested reports with their per-feed totals (feed health); `reports daily` writes
    /// the per-owner daily reports
    Reports {
        #[command(subcommand)]
        cmd: Option<ReportsCmd>,
        #[arg(long, default_value_t = 50)]
        limit: u64,
        #[command(flatten)]
        db: DbArg,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Lease and accounting records for subscriber attribution
    Leases {
        #[command(subcommand)]
        cmd: LeasesCmd,
    },
    /// Who was responsible for an address, and which subscriber held it, at a time
    Attribute {
        ip: std::net::IpAddr,
        /// The instant (RFC 3339 or YYYY-MM-DD)
        #[arg(long)]
        at: String,
        /// Source port, needed for CGNAT public addresses
        #[arg(long)]
        port: Option<u16>,
        #[command(flatten)]
        db: DbArg,
        /// JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Infection cases: list, show, acknowledge, close, update from new events
    Cases {
        #[command(subcommand)]
        cmd: botwatch::cases_cmd::CasesCmd,
        #[command(flatten)]
        db: DbArg,
    },
    /// Compliance metrics and the minimum security bar per organisation
    Compliance {
        #[command(flatten)]
        args: botwatch::cases_cmd::ComplianceArgs,
        #[command(flatten)]
        db: DbArg,
    },
    /// Deliver queued notices (e-mail, webhooks) from the durable outbox
    Notify {
        #[command(subcommand)]
        cmd: NotifyCmd,
    },
    /// Export the subscribers in the walled garden for DNS, firewall or RADIUS
    WalledGarden {
        #[command(subcommand)]
        cmd: WalledGardenCmd,
    },
    /// Match telemetry files (NetFlow/IPFIX pcaps, nfcapd files, flow logs, dnstap, DNS query
    /// logs, DNS pcaps; detected) against the store's active indicators and run the DGA, NXDOMAIN and
    /// beaconing detectors; findings are stored as sightings
    Scan {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        db: DbArg,
        /// One JSON object per flagged client
        #[arg(long)]
        json: bool,
        /// Match indicators whatever their validity window (retro-hunting in old captures)
        #[arg(long)]
        ignore_validity: bool,
        /// Report only; store no sightings
        #[arg(long)]
        no_store: bool,
        /// Indicator matching only: skip the DGA, NXDOMAIN and beaconing detectors
        #[arg(long)]
        no_detect: bool,
    },
    /// Live sensors: a NetFlow/IPFIX collector or a dnstap socket
    Sensor {
        #[command(subcommand)]
        cmd: SensorCmd,
    },
    /// DGA model
    Dga {
        #[command(subcommand)]
        cmd: DgaCmd,
    },
    /// Download the feeds configured in botwatch.toml and ingest them
    Fetch {
        /// Only the configured feeds with this feed id
        #[arg(long)]
        feed: Option<String>,
        #[command(flatten)]
        db: DbArg,
        /// Print outcomes as JSON lines
        #[arg(long)]
        json: bool,
    },
    /// IP → ASN/organisation/country data
    Geo {
        #[command(subcommand)]
        cmd: GeoCmd,
    },
    /// Write a synthetic Shadowserver event4_sinkhole report (current column layout) for
    /// benchmarks and load tests
    Synth {
        /// Rows
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        /// Distinct infected addresses
        #[arg(long, default_value_t = 20_000)]
        infected: u32,
        /// Report day
        #[arg(long, default_value = "2026-11-24")]
        day: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Run as a service: every intake on its schedule (HTTP feeds, IMAP mailboxes, the
    /// Shadowserver Reports API, the spool directory), cases, notices, daily reports and
    /// retention, with the web side ([run] serve). Until SIGTERM; SIGHUP re-reads the config
    Run {
        /// Address to listen on [default: server.listen from config, else 127.0.0.1:8080]
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        #[command(flatten)]
        db: DbArg,
    },
    /// Serve the REST API, dashboard, abuse-desk console, self-check portal and metrics
    Serve {
        /// Address to listen on [default: server.listen from config, else 127.0.0.1:8080]
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        #[command(flatten)]
        db: DbArg,
    },
    /// Delete personal data older than the retention period ([store] retain_days)
    Prune {
        /// Days to keep [default: store.retain_days from config]
        #[arg(long)]
        days: Option<u32>,
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        json: bool,
    },
    /// Create, list and revoke API tokens (for the API and the web log-in)
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
    },
    /// Ingest the shipped samples into a fresh demo database and show a summary
    Demo {
        /// Demo database (replaced)
        #[arg(long, default_value = "botwatch-demo.db")]
        db: PathBuf,
        /// Rows in the synthetic busy-day sinkhole report added to the samples
        #[arg(long, default_value_t = 20_000)]
        synthetic_rows: usize,
    },
}

#[derive(Subcommand)]
enum ReportsCmd {
    /// Write each organisation's daily report (CSV, JSON, X-ARF) about its cases
    Daily {
        /// Report day (YYYY-MM-DD) [default: yesterday, UTC]
        #[arg(long)]
        day: Option<String>,
        /// Directory for the files
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Subcommand)]
enum LeasesCmd {
    /// Import lease/accounting files (dhcpd.leases, Kea CSV, FreeRADIUS detail, CGNAT
    /// port-block logs; format detected unless given; .gz read transparently)
    Import {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// dhcpd, kea4, kea6, radius_detail, juniper_pba, cgnat_csv
        #[arg(long)]
        format: Option<String>,
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        json: bool,
    },
    /// Imported files with their record counts
    List {
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Create a token and print it (the only time it is shown; the store keeps its hash)
    Create {
        /// Who or what uses it
        #[arg(long)]
        name: String,
        /// admin, analyst or organisation
        #[arg(long)]
        role: String,
        /// Constituency id, for organisation tokens
        #[arg(long)]
        org: Option<String>,
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        json: bool,
    },
    /// Tokens, never their secrets
    List {
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id
    Revoke {
        id: i64,
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Subcommand)]
enum NotifyCmd {
    /// Send what is due: rate limits and quiet hours applied, each notice marked sent once
    /// accepted, failures retried with back-off
    Run {
        /// Render the due notices and print them; send nothing, change nothing
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        json: bool,
    },
    /// Notices in the outbox, newest first
    List {
        /// pending, sent or failed
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u64,
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum WalledGardenCmd {
    /// Write the export to stdout
    Export {
        /// rpz (client-IP policy zone), rpz-allow (the passthru zone to list first),
        /// nftables (script with sets), list (one address per line, for RADIUS CoA)
        #[arg(long, default_value = "list")]
        format: String,
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Subcommand)]
enum SensorCmd {
    /// Receive NetFlow v5/v9/IPFIX over UDP, match, and store sightings every --flush seconds
    Netflow {
        /// Address to listen on
        #[arg(long, default_value = "127.0.0.1:2055")]
        listen: std::net::SocketAddr,
        #[command(flatten)]
        run: SensorRun,
    },
    /// Accept dnstap over a Unix socket (Unbound/BIND dnstap-socket-path), match, detect
    Dnstap {
        /// Socket path to create
        #[arg(long)]
        socket: PathBuf,
        #[command(flatten)]
        run: SensorRun,
    },
}

#[derive(Args, Clone)]
struct SensorRun {
    #[command(flatten)]
    db: DbArg,
    /// Store sightings and print a summary this often (seconds)
    #[arg(long, default_value_t = 60)]
    flush: u64,
    /// Stop after this many seconds (default: run until killed)
    #[arg(long)]
    duration: Option<u64>,
}

#[derive(Subcommand)]
enum DgaCmd {
    /// Score domain names (arguments, or one per line on stdin): 0..1 and a verdict
    Score {
        domains: Vec<String>,
        /// One JSON object per name
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum GeoCmd {
    /// Look addresses up
    Lookup {
        #[arg(required = true)]
        ips: Vec<std::net::IpAddr>,
    },
    /// Check and install newer ip-location-db files (asn-ipv4.csv.gz, asn-ipv6.csv.gz,
    /// asn-country-ipv4.csv.gz, asn-country-ipv6.csv.gz) into a directory, then point
    /// enrich.ipasn_dir at it
    Import {
        /// Directory holding the four downloaded files
        from: PathBuf,
        /// Where to install them
        #[arg(long, default_value = "botwatch-geo")]
        to: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Intelmq,
    Jsonl,
    Csv,
    Stix,
    MispFeed,
}

#[derive(Subcommand)]
enum ShareCmd {
    /// Write the store's indicators and sightings into the `indicators` TAXII collection
    /// (objects whose content did not change keep their version)
    Publish {
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        json: bool,
    },
    /// The partners of [[partners]] with their entitlement and what was exchanged
    Partners {
        #[command(flatten)]
        db: DbArg,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// What went to whom and what came from whom, newest first
    Audit {
        #[arg(long)]
        partner: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u64,
        #[command(flatten)]
        db: DbArg,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Sightings of one indicator (a value such as an address or domain): this node's and
    /// every partner's
    Sightings {
        value: String,
        #[command(flatten)]
        db: DbArg,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

#[derive(Subcommand)]
enum BarCmd {
    /// This node's bar-signing public key (base64): partners set it as this node's bar_key
    Key {
        #[command(flatten)]
        db: DbArg,
    },
    /// Sign [bar] as VERSION and publish it into the `federation` TAXII collection
    Publish {
        #[arg(long)]
        version: String,
        /// Also write the signed document here
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        db: DbArg,
    },
    /// Adopt the newest bar a partner published (pulled with `taxii pull`), verified with
    /// the partner's bar_key; writes the document for [share] bar_document
    Adopt {
        #[arg(long)]
        from: String,
        #[arg(long, default_value = "botwatch-bar.json")]
        out: PathBuf,
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Subcommand)]
enum FederationCmd {
    /// Release the complete days not released yet: per day × country × ASN × family
    /// infected addresses, new cases, median remediation hours; cells under [share]
    /// k_anonymity suppressed, noised when [share] epsilon is set; published into the
    /// `federation` TAXII collection
    Release {
        /// How many complete days back
        #[arg(long, default_value_t = 7)]
        days: u32,
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        json: bool,
    },
    /// Every node's published figures summed, with each node's share
    Stats {
        /// day, country, family, asn or node
        #[arg(long, default_value = "day")]
        by: String,
        /// Carriers' compliance instead, with the bar version each was measured against
        #[arg(long)]
        carriers: bool,
        #[command(flatten)]
        db: DbArg,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// A node left: drop its figures
    Forget {
        node: String,
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Subcommand)]
enum TaxiiCmd {
    /// Poll partners' collections since the last pull, and what partners posted to this
    /// node's inbox, and ingest what came
    Pull {
        /// Only this partner (default: every partner with a url)
        #[arg(long)]
        partner: Option<String>,
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        json: bool,
    },
    /// Publish, then send partners what is new since the last push
    Push {
        #[arg(long)]
        partner: Option<String>,
        #[command(flatten)]
        db: DbArg,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum By {
    Family,
    Asn,
    Country,
    Day,
    Feed,
    Type,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colour codes only for a person at a terminal: a log file or journald gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => fmt.with_ansi(ansi).init(),
        LogFormat::Json => fmt.json().with_ansi(false).with_current_span(false).init(),
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (`| head`) is not an error worth a message.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// For commands that write: a writer already at work (an ingest) is waited for, with
/// progress, rather than failing with "database is locked".
fn open_store(cfg: &Config, db: &DbArg) -> Result<SqliteStore> {
    botwatch::serve::open_write(cfg, &db.db.clone().unwrap_or_else(|| cfg.store.path.clone()))
}

/// For commands that only read: opened read-only (nothing created, migrated or written), so a
/// user who may read the store but not write it can query it.
fn open_read(cfg: &Config, db: &DbArg) -> Result<SqliteStore> {
    botwatch::serve::open_read(cfg, &db.db.clone().unwrap_or_else(|| cfg.store.path.clone()))
}

fn open_existing(cfg: &Config, db: &DbArg) -> Result<SqliteStore> {
    let path = db.db.clone().unwrap_or_else(|| cfg.store.path.clone());
    if !path.exists() {
        bail!(
            "no database at {} (run `botwatch ingest` or `botwatch demo` first, or pass --db)",
            path.display()
        );
    }
    open_store(cfg, db)
}

fn run(cli: Cli) -> Result<ExitCode> {
    let cfg = Config::load(cli.config.as_deref())?;
    let families = botwatch::families(&cfg);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match cli.cmd {
        Cmd::Ingest { files, feed, db, json, quiet } => {
            let registry = botwatch::registry(&cfg);
            if let Some(f) = &feed {
                registry.get(f)?;
            }
            let ipdb = botwatch::ipdb(&cfg)?;
            let mut store = open_store(&cfg, &db)?;
            let ing = Ingestor {
                registry: &registry,
                ipdb: &ipdb,
                families: &families,
                limits: cfg.ingest.limits(),
            };
            // A MISP feed directory (or its manifest.json) is the events its manifest lists.
            let (files, missing) = botwatch::share::expand_misp_feeds(&files);
            for m in &missing {
                eprintln!("{m}");
            }
            let total: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
            let bar = if quiet || json {
                indicatif::ProgressBar::hidden()
            } else {
                indicatif::ProgressBar::new(total)
            };
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let mut failed = missing.len();
            let mut all: Vec<ReportSummary> = Vec::new();
            let started = std::time::Instant::now();
            for f in &files {
                let name = f.display().to_string();
                bar.set_message(name.clone());
                // Files are read as streams, never whole; standard input is spooled to a
                // temporary file first (it is read twice: once to hash, once to parse).
                let spool;
                let path = if name == "-" {
                    spool = botwatch::spool_stdin()?;
                    spool.path().to_path_buf()
                } else {
                    if let Err(e) = std::fs::File::open(f) {
                        eprintln!("{name}: cannot read: {e}");
                        failed += 1;
                        continue;
                    }
                    f.clone()
                };
                let base = f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or(name.clone());
                let before = bar.position();
                // A report, or a mail (.eml) or mbox whose attachments are reports.
                let r = botwatch_intake::ingest_file(
                    &ing,
                    &mut store,
                    &path,
                    &base,
                    &botwatch_intake::Origin {
                        feed: feed.as_deref(),
                        source: name.clone(),
                        observed: SystemClock.now(),
                        archive: None,
                    },
                    &|b| bar.inc(b),
                );
                bar.set_position(before + std::fs::metadata(f).map(|m| m.len()).unwrap_or(0));
                match r {
                    Ok(d) => {
                        for u in &d.unreadable {
                            bar.suspend(|| eprintln!("{name}: not ingested: {u}"));
                        }
                        if d.reports.is_empty() && !d.unreadable.is_empty() {
                            failed += 1;
                        }
                        all.extend(d.reports);
                    }
                    Err(e) => {
                        bar.suspend(|| eprintln!("{name}: not ingested: {e:#}"));
                        failed += 1;
                    }
                }
            }
            bar.finish_and_clear();
            let secs = started.elapsed().as_secs_f64();
            store.checkpoint()?;
            if json {
                for s in &all {
                    writeln!(out, "{}", serde_json::to_string(s)?)?;
                }
            } else {
                print_summary(&mut out, &all, secs)?;
            }
            out.flush()?;
            return Ok(if failed > 0 { ExitCode::from(3) } else { ExitCode::SUCCESS });
        }
        Cmd::Feeds { json, filter } => {
            let registry = botwatch::registry(&cfg);
            let feeds: Vec<_> = registry
                .all()
                .iter()
                .filter(|f| filter.as_deref().is_none_or(|x| f.id.contains(x)))
                .collect();
            if json {
                for f in feeds {
                    let v = serde_json::json!({"id": f.id, "name": f.name, "provider": f.provider, "accuracy": f.accuracy, "documentation": f.documentation, "description": f.description});
                    writeln!(out, "{v}")?;
                }
            } else {
                let rows: Vec<Vec<String>> = feeds
                    .iter()
                    .map(|f| {
                        vec![f.id.clone(), f.provider.clone(), f.description.clone(), f.documentation.clone()]
                    })
                    .collect();
                output::table(&mut out, &["feed", "provider", "what", "documentation"], &rows)?;
                writeln!(out, "\n{} feeds", rows.len())?;
            }
        }
        Cmd::Events { filters, db, format } => {
            let store = open_read(&cfg, &db)?;
            let mut q = filters.query(&families)?;
            if format == Format::Table && q.limit.is_none() {
                q.limit = Some(100);
            }
            let evs = store.events(&q)?;
            match format {
                Format::Jsonl => {
                    for e in &evs {
                        writeln!(out, "{}", output::event_json(e, false))?;
                    }
                }
                Format::Csv => output::csv_rows(
                    &mut out,
                    output::EVENT_COLUMNS,
                    &evs.iter().map(output::event_row).collect::<Vec<_>>(),
                )?,
                Format::Table => {
                    output::table(
                        &mut out,
                        output::EVENT_COLUMNS,
                        &evs.iter().map(output::event_row).collect::<Vec<_>>(),
                    )?;
                    if let Some(last) = evs.last()
                        && evs.len() as u64 == q.limit.unwrap_or(u64::MAX)
                    {
                        writeln!(out, "… more: --after {}", last.id)?;
                    }
                }
            }
        }
        Cmd::Observations { filters, db, format } => {
            let store = open_read(&cfg, &db)?;
            let obs = store.observations(&filters.query(&families)?)?;
            let header = [
                "id",
                "subject",
                "classification.type",
                "malware.name",
                "asn",
                "cc",
                "first_seen",
                "last_seen",
                "count",
                "sources",
                "confidence",
            ];
            let rows: Vec<Vec<String>> = obs
                .iter()
                .map(|o| {
                    vec![
                        o.id.to_string(),
                        o.subject.clone(),
                        o.classification_type.clone(),
                        o.family.clone(),
                        o.asn.map(|a| a.to_string()).unwrap_or_default(),
                        o.cc.clone().unwrap_or_default(),
                        o.first_seen.to_rfc3339(),
                        o.last_seen.to_rfc3339(),
                        o.count.to_string(),
                        o.sources.keys().cloned().collect::<Vec<_>>().join(" "),
                        format!("{:.2}", o.confidence),
                    ]
                })
                .collect();
            output::emit(&mut out, format, &obs, &header, &rows)?;
        }
        Cmd::Export {
            format: f @ (ExportFormat::Stix | ExportFormat::MispFeed),
            db,
            output: file,
            out: dir,
            partner,
            tlp,
            sightings,
            home_addresses,
            ..
        } => {
            let store = open_existing(&cfg, &db)?;
            let tlp = botwatch_model::Tlp::from_name(&tlp)
                .with_context(|| format!("--tlp: not a TLP level: {tlp:?}"))?;
            let (who, e) =
                botwatch::share::entitlement(&cfg, partner.as_deref(), tlp, sightings, home_addresses)?;
            let now = SystemClock.now();
            let me = botwatch::share::share_cfg(&cfg);
            let (channel, sent) = if matches!(f, ExportFormat::Stix) {
                let mut w: Box<dyn Write> = match &file {
                    Some(p) => Box::new(std::io::BufWriter::new(
                        std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
                    )),
                    None => Box::new(&mut out),
                };
                ("stix-export", botwatch::share::export_stix(&cfg, &store, &who, &e, &mut w, now)?)
            } else {
                let dir = dir.or(file).context("--format misp-feed needs --out DIR")?;
                let home = botwatch::share::home_test(&cfg)?;
                let (sent, (events, objects, attributes)) =
                    botwatch_share::publish::misp_feed(&store, &me, &home, &e, &dir)?;
                eprintln!(
                    "MISP feed in {}: {events} events, {objects} objects, {attributes} attributes",
                    dir.display()
                );
                ("misp-feed", sent)
            };
            eprintln!(
                "{} objects exported for {who}, {} withheld by the TLP gate (highest exported: {})",
                sent.objects,
                sent.withheld,
                sent.tlp_max.map(|t| format!("TLP:{}", t.as_str())).unwrap_or_else(|| "none".into())
            );
            if partner.is_some() {
                // Written to a file for the partner, not delivered: "exported", never "sent".
                botwatch::share::audit(
                    &store,
                    now,
                    &who,
                    "exported",
                    channel,
                    None,
                    sent.objects,
                    sent.withheld,
                    sent.tlp_max,
                    None,
                )?;
            }
        }
        Cmd::Share { cmd } => share_cmd(&cfg, cmd, &mut out)?,
        Cmd::Taxii { cmd } => taxii_cmd(&cfg, cmd, &families, &mut out)?,
        Cmd::Federation { cmd } => federation_cmd(&cfg, cmd, &mut out)?,
        Cmd::Bar { cmd } => bar_cmd(&cfg, cmd, &mut out)?,
        Cmd::Completions { shell } => {
            use clap::CommandFactory;
            // Into memory first: clap_complete panics on a failed write (a closed pipe).
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "botwatch", &mut buf);
            out.write_all(&buf)?;
        }
        Cmd::Man { out: dir } => {
            use clap::CommandFactory;
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
            let n = std::fs::read_dir(&dir)?
                .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "1")))
                .count();
            writeln!(
                out,
                "{n} man pages in {} (read one with `man -l {}/botwatch.1`)",
                dir.display(),
                dir.display()
            )?;
        }
        Cmd::Export { format, filters, db, output: file, .. } => {
            let store = open_read(&cfg, &db)?;
            let mut q = filters.query(&families)?;
            let mut w: Box<dyn Write> = match &file {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
                )),
                None => Box::new(&mut out),
            };
            let page = 10_000u64;
            let want = q.limit;
            let mut written = 0u64;
            let mut first = true;
            loop {
                q.limit = Some(want.map(|w| (w - written).min(page)).unwrap_or(page));
                if q.limit == Some(0) {
                    break;
                }
                let evs = store.events(&q)?;
                if evs.is_empty() {
                    break;
                }
                match format {
                    ExportFormat::Intelmq | ExportFormat::Jsonl => {
                        for e in &evs {
                            writeln!(
                                w,
                                "{}",
                                output::event_json(e, matches!(format, ExportFormat::Intelmq))
                            )?;
                        }
                    }
                    ExportFormat::Stix | ExportFormat::MispFeed => unreachable!("handled above"),
                    ExportFormat::Csv => {
                        let rows: Vec<_> = evs.iter().map(output::event_row).collect();
                        if first {
                            output::csv_rows(&mut w, output::EVENT_COLUMNS, &rows)?;
                        } else {
                            let mut cw = csv::Writer::from_writer(&mut w);
                            for r in rows {
                                cw.write_record(r)?;
                            }
                            cw.flush()?;
                        }
                    }
                }
                first = false;
                written += evs.len() as u64;
                q.after_id = evs.last().map(|e| e.id);
            }
            w.flush()?;
        }
        Cmd::Stats { by, filters, db, format } => {
            let store = open_read(&cfg, &db)?;
            let g = match by {
                By::Family => GroupBy::Family,
                By::Asn => GroupBy::Asn,
                By::Country => GroupBy::Country,
                By::Day => GroupBy::Day,
                By::Feed => GroupBy::Feed,
                By::Type => GroupBy::Type,
            };
            let rows = store.stats(g, &filters.query(&families)?)?;
            let ipdb = if g == GroupBy::Asn { Some(botwatch::ipdb(&cfg)?) } else { None };
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let mut v = vec![r.key.clone(), r.events.to_string(), r.subjects.to_string()];
                    if let Some(db) = &ipdb {
                        v.push(r.key.parse().ok().and_then(|a| db.as_name(a)).unwrap_or("").to_string());
                    }
                    v
                })
                .collect();
            let mut header = vec!["key", "events", "distinct_subjects"];
            if ipdb.is_some() {
                header.push("as_name");
            }
            output::emit(&mut out, format, &rows, &header, &table)?;
        }
        Cmd::Rejects { feed, report, limit, db, format } => {
            let store = open_read(&cfg, &db)?;
            let rows = store.rejects(report, feed.as_deref(), limit)?;
            let table: Vec<_> = rows.iter().map(output::reject_row).collect();
            output::emit(&mut out, format, &rows, output::REJECT_COLUMNS, &table)?;
        }
        Cmd::Reports { cmd: Some(ReportsCmd::Daily { day, out: dir, db }), .. } => {
            daily_reports(&cfg, &db, day.as_deref(), &dir, &mut out)?;
        }
        Cmd::Leases { cmd } => leases(&cfg, cmd, &mut out)?,
        Cmd::Attribute { ip, at, port, db, json } => {
            let store = open_read(&cfg, &db)?;
            let at = parse_timestamp(&at).with_context(|| format!("not a time: {at:?}"))?;
            let attr = botwatch::isp::attributor(&cfg, &store)?;
            let org = attr.constituency.as_ref().and_then(|c| {
                let asn = botwatch::ipdb(&cfg).ok().and_then(|db| db.lookup(ip)).and_then(|i| i.asn);
                c.org_for(ip, asn).cloned()
            });
            let answer = attr.index.attribute(ip, port, at);
            if json {
                let v =
                    serde_json::json!({"ip": ip, "port": port, "at": at, "org": org, "attribution": answer});
                writeln!(out, "{v}")?;
            } else {
                writeln!(
                    out,
                    "{ip}{} at {}",
                    port.map(|p| format!(" port {p}")).unwrap_or_default(),
                    at.to_rfc3339()
                )?;
                match &org {
                    Some(o) => writeln!(
                        out,
                        "  organisation: {} ({}), abuse: {}",
                        o.name,
                        o.id,
                        o.abuse_emails.join(", ")
                    )?,
                    None => writeln!(out, "  organisation: not in the constituency")?,
                }
                writeln!(out, "  subscriber:   {}", describe_attribution(&answer))?;
            }
        }
        Cmd::Cases { cmd, db } => {
            let mut store = if cmd.only_reads() { open_read(&cfg, &db)? } else { open_existing(&cfg, &db)? };
            let attr = botwatch::isp::attributor(&cfg, &store)?;
            // A subscriber is looked up by the same keyed pseudonym its records were stored
            // under; one no record and no case names is unknown, not "meets the bar".
            let cmd = match cmd {
                botwatch::cases_cmd::CasesCmd::Status { who, json }
                    if who.parse::<std::net::IpAddr>().is_err() =>
                {
                    let stored = match botwatch::keys::pseudonymiser_read(&cfg, &store)? {
                        Some(p) if !attr.index.knows_subscriber(&who) => p.pseudonym(&who),
                        _ => who.clone(),
                    };
                    let q =
                        botwatch_cases::CaseQuery { subscriber: Some(stored.clone()), ..Default::default() };
                    if !attr.index.knows_subscriber(&stored)
                        && botwatch_store::cases::CaseStore::cases(&store, &q)?.is_empty()
                    {
                        bail!(
                            "unknown subscriber {who:?}: no lease record and no case names it (not a verdict)"
                        );
                    }
                    botwatch::cases_cmd::CasesCmd::Status { who: stored, json }
                }
                c => c,
            };
            let cc = botwatch_cases::CasesConfig { cases: cfg.cases.clone(), bar: cfg.bar.clone() };
            botwatch::cases_cmd::run(&cmd, &mut store, &attr, &SystemClock, &cc, &mut out)?;
        }
        Cmd::Compliance { args, db } => {
            let store = open_read(&cfg, &db)?;
            let attr = botwatch::isp::attributor(&cfg, &store)?;
            let cc = botwatch_cases::CasesConfig { cases: cfg.cases.clone(), bar: cfg.bar.clone() };
            botwatch::cases_cmd::run_compliance(&args, &store, &attr, &SystemClock, &cc, &mut out)?;
        }
        Cmd::Notify { cmd } => notify(&cfg, cmd, &mut out)?,
        Cmd::Scan { files, db, json, ignore_validity, no_store, no_detect } => {
            let opts = ScanOpts { json, ignore_validity, no_store, no_detect };
            return scan(&cfg, &files, &db, opts, &mut out);
        }
        Cmd::Sensor { cmd } => sensor(&cfg, cmd, &mut out)?,
        Cmd::Dga { cmd: DgaCmd::Score { domains, json } } => {
            let names: Vec<String> = if domains.is_empty() {
                std::io::stdin().lines().map_while(|l| l.ok()).filter(|l| !l.trim().is_empty()).collect()
            } else {
                domains
            };
            let model = botwatch_telemetry::detect::dga::DgaModel::builtin();
            for n in botwatch_telemetry::detect::score_names(names.iter().map(|n| n.trim())) {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&n)?)?;
                } else {
                    writeln!(
                        out,
                        "{:.3}  {:<5} {:<40} {}",
                        n.score,
                        if n.dga { "DGA" } else { "ok" },
                        n.domain,
                        model.explain(&n.domain)
                    )?;
                }
            }
        }
        Cmd::WalledGarden { cmd: WalledGardenCmd::Export { format, db } } => {
            let store = open_read(&cfg, &db)?;
            let bytes = botwatch::isp::walled_garden_export(&cfg, &store, &format, SystemClock.now())?;
            out.write_all(&bytes)?;
        }
        Cmd::Reports { cmd: None, limit, db, format } => {
            let store = open_read(&cfg, &db)?;
            let reps = store.reports(limit)?;
            let header =
                ["id", "feed", "name", "ingested", "events", "duplicates", "merged", "rejects", "warnings"];
            let rows: Vec<Vec<String>> = reps
                .iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        r.feed.clone(),
                        r.name.clone().unwrap_or_default(),
                        r.ingested_at.to_rfc3339(),
                        r.events.to_string(),
                        r.duplicates.to_string(),
                        r.merged.to_string(),
                        r.rejects.to_string(),
                        r.warnings.as_array().map(|a| a.len()).unwrap_or(0).to_string(),
                    ]
                })
                .collect();
            output::emit(&mut out, format, &reps, &header, &rows)?;
        }
        Cmd::Fetch { feed, db, json } => {
            let sources: Vec<_> =
                cfg.feeds.iter().filter(|s| feed.is_none() || s.feed == feed).cloned().collect();
            if sources.is_empty() {
                bail!(
                    "no feeds to fetch: add [[feeds]] entries with a url to botwatch.toml (see botwatch.example.toml)"
                );
            }
            for s in &sources {
                botwatch::fetch::check_url(&s.url)?;
            }
            let registry = botwatch::registry(&cfg);
            let ipdb = botwatch::ipdb(&cfg)?;
            let mut store = open_store(&cfg, &db)?;
            let ing = Ingestor {
                registry: &registry,
                ipdb: &ipdb,
                families: &families,
                limits: cfg.ingest.limits(),
            };
            let fetcher = botwatch::fetch::Fetcher::new(&cfg.fetch, &SystemClock)?;
            let mut failed = 0;
            for s in &sources {
                let o = fetcher.fetch(s, &mut store, &ing);
                if o.error.is_some() {
                    failed += 1;
                }
                if json {
                    writeln!(out, "{}", serde_json::to_string(&o)?)?;
                } else {
                    let ev: u64 = o.reports.iter().map(|r| r.events).sum();
                    let rj: u64 = o.reports.iter().map(|r| r.rejects).sum();
                    writeln!(
                        out,
                        "{:<60} {:<14} {:>7} events {:>5} rejects  {}",
                        o.url,
                        o.status,
                        ev,
                        rj,
                        o.error.clone().unwrap_or_default()
                    )?;
                }
            }
            out.flush()?;
            return Ok(if failed > 0 { ExitCode::from(4) } else { ExitCode::SUCCESS });
        }
        Cmd::Geo { cmd } => match cmd {
            GeoCmd::Lookup { ips } => {
                let db = botwatch::ipdb(&cfg)?;
                for ip in ips {
                    let i = db.lookup(ip);
                    writeln!(
                        out,
                        "{ip}\tAS{}\t{}\t{}",
                        i.as_ref().and_then(|i| i.asn).map(|a| a.to_string()).unwrap_or_else(|| "?".into()),
                        i.as_ref()
                            .and_then(|i| i.cc_str().map(str::to_string))
                            .unwrap_or_else(|| "??".into()),
                        i.as_ref()
                            .and_then(|i| i.as_name.as_ref().map(|s| s.to_string()))
                            .unwrap_or_default()
                    )?;
                }
                writeln!(out, "# {}", botwatch_enrich::CREDIT)?;
            }
            GeoCmd::Import { from, to } => {
                let db = botwatch_enrich::IpDb::load_dir(&from).context("checking the new files")?;
                std::fs::create_dir_all(&to)?;
                for f in botwatch_enrich::FILES {
                    std::fs::copy(from.join(f), to.join(f)).with_context(|| format!("copying {f}"))?;
                }
                let (segments, bytes) = db.stats();
                writeln!(
                    out,
                    "Installed {} segments ({:.1} MB in memory) into {}.",
                    segments,
                    bytes as f64 / 1e6,
                    to.display()
                )?;
                writeln!(out, "Set in botwatch.toml:\n[enrich]\nipasn_dir = {:?}", to.display().to_string())?;
            }
        },
        Cmd::Synth { rows, infected, day, seed } => {
            out.write_all(
                botwatch_feeds::shadowserver::synth::event4_sinkhole(rows, infected, &day, seed).as_bytes(),
            )?;
        }
        Cmd::Serve { listen, db } => serve(&cfg, listen, &db)?,
        Cmd::Run { listen, db } => {
            // The web side prints from another thread: stdout must not stay locked here.
            out.flush()?;
            drop(out);
            botwatch::runner::run(botwatch::runner::RunArgs {
                config: cli.config.clone(),
                db: db.db,
                listen,
            })?;
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Token { cmd } => token(&cfg, cmd, &mut out)?,
        Cmd::Prune { days, db, json } => {
            let Some(days) = days.or(cfg.store.retain_days) else {
                bail!("no retention period: set [store] retain_days or pass --days");
            };
            let mut store = open_existing(&cfg, &db)?;
            let before =
                Timestamp::from_micros(SystemClock.now().micros() - i64::from(days) * 86_400_000_000);
            let s = store.prune(before)?;
            let archived = botwatch::fetch::prune_archive(&cfg.fetch, before)?;
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"before": before, "store": s, "archived_reports": archived})
                )?;
            } else {
                writeln!(
                    out,
                    "older than {} ({days} days) deleted: {} events, {} observations, {} rejected lines, {} lease records, {} exposures, {} shared objects naming addresses, {} archived reports; evidence cleared on {} closed cases and {} finished notices",
                    before.to_rfc3339(),
                    s.events,
                    s.observations,
                    s.rejects,
                    s.lease_records,
                    s.exposures,
                    s.shared_objects,
                    archived,
                    s.closed_case_evidence,
                    s.notice_payloads
                )?;
            }
        }
        Cmd::Demo { db, synthetic_rows } => {
            let registry = botwatch::registry(&cfg);
            let ipdb = botwatch::ipdb(&cfg)?;
            let ing = Ingestor {
                registry: &registry,
                ipdb: &ipdb,
                families: &families,
                limits: cfg.ingest.limits(),
            };
            let r = botwatch::demo::run(&db, &ing, synthetic_rows, &mut out, true)?;
            out.flush()?;
            if !r.failed.is_empty() {
                return Ok(ExitCode::from(3));
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn print_summary(out: &mut dyn Write, all: &[ReportSummary], secs: f64) -> Result<()> {
    writeln!(
        out,
        "{:<48} {:<34} {:>8} {:>6} {:>6} {:>6} {:>5}",
        "report", "feed", "events", "dups", "merged", "reject", "drift"
    )?;
    for s in all {
        let name: String = if s.name.chars().count() > 48 {
            s.name.chars().take(47).chain(['…']).collect()
        } else {
            s.name.clone()
        };
        if !s.new {
            writeln!(out, "{name:<48} {:<34} already ingested (same content), skipped", s.feed)?;
            continue;
        }
        writeln!(
            out,
            "{name:<48} {:<34} {:>8} {:>6} {:>6} {:>6} {:>5}",
            s.feed, s.events, s.duplicates, s.merged, s.rejects, s.drift_warnings
        )?;
        for w in s.warnings.iter().take(5) {
            writeln!(out, "    warning: {}", w.message)?;
        }
    }
    let ev: u64 = all.iter().map(|s| s.events).sum();
    let rj: u64 = all.iter().map(|s| s.rejects).sum();
    writeln!(
        out,
        "{} reports, {} events, {} rejects in {:.2} s ({:.0} events/s)",
        all.len(),
        ev,
        rj,
        secs,
        ev as f64 / secs.max(1e-9)
    )?;
    if rj > 0 {
        writeln!(out, "Rejected lines are kept: `botwatch rejects` lists them with line number and reason.")?;
    }
    Ok(())
}

fn describe_attribution(a: &botwatch_enrich::subscriber::Attribution<'_>) -> String {
    use botwatch_enrich::subscriber::Attribution;
    let rec = |r: &botwatch_enrich::subscriber::RecordRef<'_>| {
        let ids: Vec<String> = r.identifiers().iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "{} [{} – {}] from {} line {}{}",
            r.subscriber(),
            r.start().to_rfc3339(),
            r.end().map(|e| e.to_rfc3339()).unwrap_or_else(|| "open".into()),
            r.source(),
            r.line(),
            if ids.is_empty() { String::new() } else { format!(" ({})", ids.join(", ")) }
        )
    };
    match a {
        Attribution::Exact { record } => rec(record),
        Attribution::Ambiguous { candidates, reason } => {
            let list: Vec<String> =
                candidates.iter().map(|c| format!("\n    candidate: {}", rec(c))).collect();
            format!("AMBIGUOUS ({reason:?}) — not attributed{}", list.concat())
        }
        Attribution::NotFound { before, after } => {
            let mut s = "NOT FOUND — no record covers that instant".to_string();
            if let Some(b) = before {
                s.push_str(&format!("\n    nearest before: {}", rec(b)));
            }
            if let Some(a) = after {
                s.push_str(&format!("\n    nearest after:  {}", rec(a)));
            }
            s
        }
    }
}

fn leases(cfg: &Config, cmd: LeasesCmd, out: &mut dyn Write) -> Result<()> {
    use botwatch_store::leases::LeaseStore;
    match cmd {
        LeasesCmd::Import { files, format, db, json } => {
            let mut store = open_store(cfg, &db)?;
            for f in &files {
                let s = botwatch::isp::import_leases(cfg, &mut store, f, format.as_deref(), &SystemClock)?;
                if json {
                    writeln!(out, "{}", serde_json::to_string(&s)?)?;
                } else if s.new {
                    writeln!(
                        out,
                        "{}: {} records ({}), {} rejected lines",
                        s.file, s.records, s.format, s.rejects
                    )?;
                    for (line, why) in &s.reject_samples {
                        writeln!(out, "    line {line}: {why}")?;
                    }
                } else {
                    writeln!(out, "{}: already imported (same content), skipped", s.file)?;
                }
            }
        }
        LeasesCmd::List { db, json } => {
            let store = open_read(cfg, &db)?;
            for i in store.lease_imports()? {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&i)?)?;
                } else {
                    writeln!(
                        out,
                        "{:>4}  {:<12} {:>9} records {:>6} rejects  {}  {}",
                        i.id,
                        i.import.format,
                        i.records,
                        i.import.rejects,
                        i.import.imported_at.to_rfc3339(),
                        i.import.name
                    )?;
                }
            }
        }
    }
    Ok(())
}

fn notify(cfg: &Config, cmd: NotifyCmd, out: &mut dyn Write) -> Result<()> {
    use botwatch_store::outbox::{NoticeStatus, OutboxStore};
    match cmd {
        NotifyCmd::Run { dry_run, db, json } => {
            let mut store = open_existing(cfg, &db)?;
            botwatch_notify::webhook::install_crypto_provider();
            let mut ncfg = cfg.notify.clone();
            ncfg.secret = botwatch::keys::notify_key(cfg, &mut store)?;
            let transports = botwatch_notify::Transports::from_config(&ncfg)?;
            let mut policy = cfg.notify.policy.clone();
            policy.dry_run = dry_run;
            let sum = botwatch_notify::drain(&mut store, &SystemClock, &transports, &policy)?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&sum)?)?;
            } else {
                for p in &sum.previews {
                    writeln!(
                        out,
                        "--- notice {} → {} ({:?}), Message-ID <{}>",
                        p.id, p.recipient, p.channel, p.message_id
                    )?;
                    writeln!(out, "Subject: {}\n\n{}", p.rendered.subject, p.rendered.text)?;
                }
                writeln!(
                    out,
                    "{} due · {} sent · {} deferred (rate limit) · {} deferred (quiet hours) · {} to retry · {} failed · {} cancelled (case closed) · {} taken over by another runner · {} left queued (no transport){}",
                    sum.due,
                    sum.sent,
                    sum.deferred_rate_limit,
                    sum.deferred_quiet_hours,
                    sum.retried,
                    sum.failed,
                    sum.cancelled,
                    sum.lost_claim,
                    sum.no_transport,
                    if dry_run { " (dry run: nothing sent)" } else { "" }
                )?;
            }
            if !dry_run && !sum.missing_transports.is_empty() {
                let what: Vec<&str> = sum
                    .missing_transports
                    .iter()
                    .map(|c| match c {
                        botwatch_store::outbox::Channel::Email => {
                            "e-mail notices need [notify.smtp] url (or host) in the config"
                        }
                        botwatch_store::outbox::Channel::Webhook => "webhook notices need [notify.webhook]",
                    })
                    .collect();
                bail!("{} notice(s) left queued, not sent: {}", sum.no_transport, what.join("; "));
            }
        }
        NotifyCmd::List { status, limit, db, json } => {
            let store = open_read(cfg, &db)?;
            let status = match status {
                Some(s) => {
                    Some(NoticeStatus::from_name(&s).with_context(|| format!("unknown status {s:?}"))?)
                }
                None => None,
            };
            for n in store.notices(status, limit)? {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&n)?)?;
                } else {
                    writeln!(
                        out,
                        "{:>5}  {:<7} {:<8} {:<16} {:<40} case {:>5}  {}",
                        n.id,
                        n.status.as_str(),
                        n.notice.channel.as_str(),
                        n.notice.kind,
                        n.notice.recipient,
                        n.notice.case_id.map(|c| c.to_string()).unwrap_or_default(),
                        n.notice.key
                    )?;
                }
            }
        }
    }
    Ok(())
}

fn daily_reports(
    cfg: &Config,
    db: &DbArg,
    day: Option<&str>,
    dir: &std::path::Path,
    out: &mut dyn Write,
) -> Result<()> {
    let store = open_read(cfg, db)?;
    let now = SystemClock.now();
    let day = match day {
        Some(d) => d.to_string(),
        None => botwatch::isp::yesterday(now),
    };
    for w in botwatch::isp::write_daily_reports(cfg, &store, &day, dir, now)? {
        writeln!(out, "{}: {} rows → {}.{{csv,json,xarf.jsonl}}", w.org, w.rows, w.base.display())?;
    }
    Ok(())
}

struct ScanOpts {
    json: bool,
    ignore_validity: bool,
    no_store: bool,
    no_detect: bool,
}

fn scan(
    cfg: &Config,
    files: &[PathBuf],
    db: &DbArg,
    opts: ScanOpts,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    use botwatch::sensor;
    let ScanOpts { json, ignore_validity, no_store, no_detect } = opts;
    let mut store = open_store(cfg, db)?;
    let path = db.db.clone().unwrap_or_else(|| cfg.store.path.clone());
    let (matcher, compiled) =
        sensor::matcher_cached(&store, &cfg.sensor, sensor::matcher_snapshot_path(&path).as_deref())?;
    let matcher = std::sync::Arc::new(matcher);
    let ms = matcher.stats();
    let mut scanner = sensor::Scanner::new(matcher, &cfg.sensor, ignore_validity);
    if no_detect {
        scanner = scanner.without_detectors();
    }
    let total: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    let bar = if json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} scanning [{bar:30}] {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let mut failed = 0;
    let mut scanned = Vec::new();
    for f in files {
        let name = f.display().to_string();
        bar.set_message(name.clone());
        // The first bytes tell an nfcapd file, which is streamed block by block (no
        // file-sized buffer to fault in); every other format is read whole.
        let peeked = std::fs::File::open(f).and_then(|mut file| {
            let mut head = Vec::with_capacity(4096);
            std::io::Read::read_to_end(&mut std::io::Read::take(&mut file, 4096), &mut head)?;
            Ok((file, head))
        });
        let (mut file, mut data) = match peeked {
            Ok(x) => x,
            Err(e) => {
                eprintln!("error: {name}: {e}");
                failed += 1;
                continue;
            }
        };
        let len = file.metadata().map_or(0, |m| m.len());
        if botwatch_telemetry::flow::nfcapd::is_nfcapd(&data) {
            let digest = (!no_store).then_some(&mut hasher);
            match sensor::scan_nfcapd_reader(&mut scanner, &name, &mut file, digest) {
                Ok(s) => scanned.push(s),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    failed += 1;
                }
            }
            bar.inc(len);
            continue;
        }
        data.reserve(usize::try_from(len).unwrap_or(0).saturating_sub(data.len()));
        if let Err(e) = std::io::Read::read_to_end(&mut file, &mut data) {
            eprintln!("error: {name}: {e}");
            failed += 1;
            continue;
        }
        // The digest names the sightings' report (a second scan of the same files adds
        // nothing); a scan that stores nothing need not pay for it.
        if !no_store {
            sha2::Digest::update(&mut hasher, &data);
        }
        let written = std::fs::metadata(f)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| Timestamp::from_micros(d.as_micros() as i64));
        match sensor::scan_file(&mut scanner, &name, &data, written) {
            Ok(s) => scanned.push(s),
            Err(e) => {
                eprintln!("error: {e:#}");
                failed += 1;
            }
        }
        bar.inc(data.len() as u64);
    }
    bar.finish_and_clear();
    let counts = scanner.counts;
    let flagged = scanner.finish();
    let secs = started.elapsed().as_secs_f64();
    let mut stored = 0;
    if !no_store && !flagged.is_empty() {
        let sha = botwatch::pipeline::digest_hex(hasher);
        let (hits, found): (Vec<_>, Vec<_>) = flagged.iter().cloned().partition(|f| f.reason == "indicator");
        let name = format!("scan of {} file(s)", files.len());
        stored += sensor::store_sightings(
            &mut store,
            &format!("{sha}:match"),
            &name,
            &sensor::sightings(&hits, "match"),
        )?;
        stored += sensor::store_sightings(
            &mut store,
            &format!("{sha}:detect"),
            &name,
            &sensor::sightings(&found, "detect"),
        )?;
        store.checkpoint()?;
    }
    if json {
        for f in &flagged {
            writeln!(out, "{}", serde_json::to_string(f)?)?;
        }
    } else {
        for s in &scanned {
            writeln!(
                out,
                "{}: {} records ({}), {} rejected",
                s.file,
                s.records,
                s.kinds.join("+"),
                s.rejects
            )?;
        }
        writeln!(
            out,
            "matched against {} active indicators ({} IPv4 / {} IPv6 segments, {} domains; {})",
            ms.indicators,
            ms.v4_segments,
            ms.v6_segments,
            ms.domains,
            match compiled {
                sensor::Compiled::Snapshot => "compiled snapshot",
                sensor::Compiled::Store => "compiled from the store",
            }
        )?;
        for f in &flagged {
            writeln!(
                out,
                "  {:<40} {:<9} {:<28} ×{:<6} {} – {}  {}",
                f.client.to_string(),
                f.reason,
                f.indicator.clone().or(f.score.map(|s| format!("score {s:.2}"))).unwrap_or_default(),
                f.count,
                f.first_seen.to_rfc3339(),
                f.last_seen.to_rfc3339(),
                f.detail
            )?;
        }
        let clients: std::collections::BTreeSet<_> = flagged.iter().map(|f| f.client).collect();
        writeln!(
            out,
            "{} flow records, {} DNS records, {} indicator hits; {} clients flagged; {} sightings stored; {:.2} s ({:.0} records/s)",
            counts.flows,
            counts.dns,
            counts.hits,
            clients.len(),
            stored,
            secs,
            (counts.flows + counts.dns) as f64 / secs.max(1e-9)
        )?;
    }
    out.flush()?;
    Ok(if failed > 0 { ExitCode::from(3) } else { ExitCode::SUCCESS })
}

/// What the server needs, from the config: the constituency, leases for attribution, the
/// case policy, the bar, remediation advice and the notice-link key.
fn serve(cfg: &Config, listen: Option<std::net::SocketAddr>, db: &DbArg) -> Result<()> {
    let path = db.db.clone().unwrap_or_else(|| cfg.store.path.clone());
    let prepared = botwatch::serve::prepare(cfg, path, listen)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(botwatch::serve::serve(prepared, botwatch_server::shutdown_signal()))
}

fn share_cmd(cfg: &Config, cmd: ShareCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        ShareCmd::Publish { db, json } => {
            let mut store = open_existing(cfg, &db)?;
            let me = botwatch::share::share_cfg(cfg);
            let home = botwatch::share::home_test(cfg)?;
            let s = botwatch_share::publish::publish(&mut store, &me, &home, SystemClock.now())?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&s)?)?;
            } else {
                writeln!(
                    out,
                    "published {} objects: {} new or changed, {} unchanged",
                    s.objects, s.added, s.unchanged
                )?;
            }
        }
        ShareCmd::Partners { db, format } => {
            let store = open_read(cfg, &db)?;
            let ex = store.share_exchanges()?;
            let header = [
                "partner",
                "country",
                "max_tlp",
                "sightings",
                "home_addresses",
                "read",
                "write",
                "sent",
                "received",
                "withheld",
                "last_exchange",
                "last_error",
            ];
            let rows: Vec<Vec<String>> = cfg
                .partners
                .iter()
                .map(|p| {
                    let x = ex.iter().find(|x| x.partner == p.name).cloned().unwrap_or_default();
                    vec![
                        p.name.clone(),
                        p.country.clone().unwrap_or_default(),
                        format!("TLP:{}", p.max_tlp.as_str()),
                        p.sightings.to_string(),
                        p.home_addresses.to_string(),
                        p.read.join(","),
                        p.write.join(","),
                        x.sent.to_string(),
                        x.received.to_string(),
                        x.withheld.to_string(),
                        x.last_exchange.map(|t| t.to_rfc3339()).unwrap_or_default(),
                        x.last_error.unwrap_or_default(),
                    ]
                })
                .collect();
            output::emit(out, format, &cfg.partners.iter().map(|p| serde_json::json!({"partner": p.name, "country": p.country, "max_tlp": p.max_tlp, "sightings": p.sightings, "home_addresses": p.home_addresses, "read": p.read, "write": p.write, "exchanges": ex.iter().find(|x| x.partner == p.name)})).collect::<Vec<_>>(), &header, &rows)?;
        }
        ShareCmd::Audit { partner, limit, db, format } => {
            let store = open_read(cfg, &db)?;
            let list = store.share_audit_list(partner.as_deref(), limit)?;
            let header = [
                "at",
                "partner",
                "direction",
                "channel",
                "collection",
                "objects",
                "withheld",
                "tlp_max",
                "error",
            ];
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|a| {
                    vec![
                        a.at.to_rfc3339(),
                        a.partner.clone(),
                        a.direction.clone(),
                        a.channel.clone(),
                        a.collection.clone().unwrap_or_default(),
                        a.objects.to_string(),
                        a.withheld.to_string(),
                        a.tlp_max.clone().unwrap_or_default(),
                        a.error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            output::emit(out, format, &list, &header, &rows)?;
        }
        ShareCmd::Sightings { value, db, format } => {
            let store = open_read(cfg, &db)?;
            let rows = sightings_of(&store, &value)?;
            let header = ["by", "count", "first_seen", "last_seen", "sighting"];
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r["by"].as_str().unwrap_or("").into(),
                        r["count"].to_string(),
                        r["first_seen"].as_str().unwrap_or("").into(),
                        r["last_seen"].as_str().unwrap_or("").into(),
                        r["id"].as_str().unwrap_or("").into(),
                    ]
                })
                .collect();
            output::emit(out, format, &rows, &header, &table)?;
        }
    }
    Ok(())
}

/// Every sighting of the indicator for `value`: this node's own and those partners sent.
fn sightings_of(store: &SqliteStore, value: &str) -> Result<Vec<serde_json::Value>> {
    let ind = botwatch_share::stix::indicator_id(value);
    let mut out = Vec::new();
    let mut colls: Vec<String> = store.share_counts()?.into_iter().map(|(c, _)| c).collect();
    colls.sort();
    for c in colls {
        let mut after = None;
        loop {
            let q = botwatch_store::share::SharePage {
                collection: c.clone(),
                after_seq: after,
                types: vec!["sighting".into()],
                limit: 1000,
                ..Default::default()
            };
            let (rows, more) = store.share_page(&q)?;
            for r in &rows {
                let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
                if v["sighting_of_ref"] == ind.as_str() {
                    out.push(serde_json::json!({
                        "by": r.partner.clone().unwrap_or_else(|| "this node".into()),
                        "id": v["id"], "count": v["count"], "first_seen": v["first_seen"], "last_seen": v["last_seen"],
                    }));
                }
            }
            after = rows.last().map(|r| r.seq);
            if !more {
                break;
            }
        }
    }
    Ok(out)
}

fn bar_key(store: &mut SqliteStore) -> Result<Vec<u8>> {
    let fresh = botwatch_share::bar::new_key()?;
    Ok(store.secret_or_init("bar-signing-key", || fresh, SystemClock.now().micros())?)
}

fn bar_cmd(cfg: &Config, cmd: BarCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        BarCmd::Key { db } => {
            let mut store = open_existing(cfg, &db)?;
            writeln!(out, "{}", botwatch_share::bar::public_key(&bar_key(&mut store)?)?)?;
        }
        BarCmd::Publish { version, out: file, db } => {
            if cfg.bar.is_empty() {
                bail!("no [bar] thresholds to publish (see botwatch.example.toml)");
            }
            let mut store = open_existing(cfg, &db)?;
            let key = bar_key(&mut store)?;
            let me = botwatch::share::share_cfg(cfg);
            let now = SystemClock.now();
            let doc = botwatch_share::bar::sign(
                &key,
                &me.node,
                &version,
                &botwatch_share::stix::time(now),
                serde_json::to_value(&cfg.bar)?,
            )?;
            let producer = me.producer();
            let objs = [
                botwatch_share::stix::Obj::from_value(
                    botwatch_share::bar::extension_definition(),
                    botwatch_share::gate::Label {
                        tlp: Some(botwatch_model::Tlp::Clear),
                        ..Default::default()
                    },
                ),
                botwatch_share::bar::to_object(&doc, &producer.identity_id()),
            ];
            let coll = botwatch_share::taxii::CollectionKind::Federation.id(&me.node);
            store.share_put(&coll, None, objs.iter().map(botwatch_share::publish::new_object), now)?;
            if let Some(f) = file {
                std::fs::write(&f, serde_json::to_string_pretty(&doc)?)?;
            }
            writeln!(out, "published bar {} {version}, signed with key {}", me.node, doc.public_key)?;
        }
        BarCmd::Adopt { from, out: file, db } => {
            let p = botwatch::share::partner(cfg, &from)?;
            let key = p.bar_key.clone().with_context(|| format!("partner {from:?} has no bar_key: a bar is adopted only under a key configured for its issuer"))?;
            let store = open_read(cfg, &db)?;
            let mut newest: Option<(i64, botwatch_share::bar::SignedBar)> = None;
            let mut after = None;
            loop {
                let q = botwatch_store::share::SharePage {
                    collection: format!("received:{from}"),
                    after_seq: after,
                    types: vec![botwatch_share::bar::OBJECT_TYPE.into()],
                    limit: 1000,
                    ..Default::default()
                };
                let (rows, more) = store.share_page(&q)?;
                for r in &rows {
                    if let Some(d) =
                        serde_json::from_str(&r.body).ok().as_ref().and_then(botwatch_share::bar::from_object)
                    {
                        newest = Some((r.seq, d));
                    }
                }
                after = rows.last().map(|r| r.seq);
                if !more {
                    break;
                }
            }
            let (_, doc) = newest.with_context(|| {
                format!("no security bar received from {from} (run `botwatch taxii pull --partner {from}`)")
            })?;
            botwatch_share::bar::verify(&doc, &key)
                .with_context(|| format!("the bar {} {} from {from}", doc.issuer, doc.version))?;
            std::fs::write(&file, serde_json::to_string_pretty(&doc)?)?;
            writeln!(
                out,
                "adopted bar {} {} (signature verified with {from}'s key) into {}; set [share] bar_document = {:?} to measure against it",
                doc.issuer,
                doc.version,
                file.display(),
                file.display().to_string()
            )?;
        }
    }
    Ok(())
}

fn federation_cmd(cfg: &Config, cmd: FederationCmd, out: &mut dyn Write) -> Result<()> {
    match cmd {
        FederationCmd::Release { days, db, json } => {
            let mut store = open_existing(cfg, &db)?;
            let s = botwatch::federation::release(cfg, &mut store, SystemClock.now(), days)?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&s)?)?;
            } else {
                writeln!(
                    out,
                    "released {} cells for {} day(s), {} suppressed (k-anonymity), {} objects published; noise: {}; epsilon spent so far: {}",
                    s.cells,
                    s.days.len(),
                    s.suppressed,
                    s.published,
                    s.epsilon.map(|e| format!("geometric, epsilon {e}")).unwrap_or_else(|| "none".into()),
                    s.budget_spent
                )?;
            }
        }
        FederationCmd::Stats { by, carriers, db, format } => {
            let store = open_read(cfg, &db)?;
            let by = botwatch_share::federation::By::parse(&by)
                .context("--by: day, country, family, asn or node")?;
            let view = botwatch_share::federation::global(&store.federation_cells(None)?, by);
            if carriers {
                let header = ["bar_version", "node", "carrier", "verdict", "infections_per_1000"];
                let rows: Vec<Vec<String>> = view
                    .carriers
                    .iter()
                    .map(|c| {
                        vec![
                            c.bar_version.clone().unwrap_or_else(|| "(local, unversioned)".into()),
                            c.node.clone(),
                            c.carrier.clone(),
                            c.verdict.clone().unwrap_or_default(),
                            c.infections_per_1000.map(|x| format!("{x:.2}")).unwrap_or_default(),
                        ]
                    })
                    .collect();
                output::emit(out, format, &view.carriers, &header, &rows)?;
                return Ok(());
            }
            let nodes: Vec<String> = view.nodes.iter().map(|n| n.node.clone()).collect();
            let mut header = vec!["key".to_string(), "infected".into(), "new_cases".into()];
            header.extend(nodes.iter().cloned());
            let rows: Vec<Vec<String>> = view
                .rows
                .iter()
                .map(|r| {
                    let mut v = vec![r.key.clone(), r.infected.to_string(), r.new_cases.to_string()];
                    v.extend(nodes.iter().map(|n| r.by_node.get(n).copied().unwrap_or(0).to_string()));
                    v
                })
                .collect();
            let header: Vec<&str> = header.iter().map(String::as_str).collect();
            output::emit(out, format, &view.rows, &header, &rows)?;
        }
        FederationCmd::Forget { node, db } => {
            let mut store = open_existing(cfg, &db)?;
            let n = store.federation_forget(&node)?;
            writeln!(out, "forgot {n} cells of {node}")?;
        }
    }
    Ok(())
}

fn taxii_cmd(
    cfg: &Config,
    cmd: TaxiiCmd,
    families: &botwatch_model::FamilyTable,
    out: &mut dyn Write,
) -> Result<()> {
    let chosen = |name: &Option<String>| -> Result<Vec<botwatch_share::partners::Partner>> {
        Ok(match name {
            Some(n) => vec![botwatch::share::partner(cfg, n)?.clone()],
            None => cfg.partners.iter().filter(|p| p.url.is_some()).cloned().collect(),
        })
    };
    match cmd {
        TaxiiCmd::Pull { partner, db, json } => {
            let registry = botwatch::registry(cfg);
            let ipdb = botwatch::ipdb(cfg)?;
            let mut store = open_store(cfg, &db)?;
            let ing = Ingestor { registry: &registry, ipdb: &ipdb, families, limits: cfg.ingest.limits() };
            let mut failed = 0;
            // What partners posted to this node's inbox comes in the same way.
            for s in botwatch::share::ingest_inbox(cfg, &mut store, &ing, &SystemClock)? {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&s)?)?;
                } else {
                    writeln!(
                        out,
                        "{} inbox: {} objects posted, {} events, {} rejects",
                        s.partner, s.objects, s.events, s.rejects
                    )?;
                }
            }
            for p in chosen(&partner)? {
                match botwatch::share::pull(cfg, &mut store, &ing, &p, &SystemClock) {
                    Ok(list) => {
                        for s in list {
                            if json {
                                writeln!(out, "{}", serde_json::to_string(&s)?)?;
                            } else {
                                writeln!(
                                    out,
                                    "{} {}: {} objects in {} pages, {} events, {} rejects, {} aggregates",
                                    s.partner,
                                    s.collection,
                                    s.objects,
                                    s.pages,
                                    s.events,
                                    s.rejects,
                                    s.aggregates
                                )?;
                            }
                        }
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("{}: {e:#}", p.name);
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} partner(s) could not be pulled");
            }
        }
        TaxiiCmd::Push { partner, db, json } => {
            let mut store = open_existing(cfg, &db)?;
            let me = botwatch::share::share_cfg(cfg);
            let home = botwatch::share::home_test(cfg)?;
            botwatch_share::publish::publish(&mut store, &me, &home, SystemClock.now())?;
            let mut failed = 0;
            for p in chosen(&partner)?.into_iter().filter(|p| p.push_collection.is_some()) {
                match botwatch::share::push(cfg, &mut store, &p, &SystemClock) {
                    Ok(s) if json => writeln!(out, "{}", serde_json::to_string(&s)?)?,
                    Ok(s) => writeln!(
                        out,
                        "{}: {} objects taken by the partner in {} envelopes ({} refused there), {} withheld by the TLP gate",
                        s.partner, s.sent, s.posts, s.refused, s.withheld
                    )?,
                    Err(e) => {
                        failed += 1;
                        eprintln!("{}: {e:#}", p.name);
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} partner(s) could not be pushed to");
            }
        }
    }
    Ok(())
}

fn token(cfg: &Config, cmd: TokenCmd, out: &mut dyn Write) -> Result<()> {
    use botwatch_server::auth::{Role, hash_token, new_token};
    use botwatch_store::tokens::TokenStore;
    match cmd {
        TokenCmd::Create { name, role, org, db, json } => {
            let role = Role::parse(&role)
                .ok_or_else(|| anyhow::anyhow!("--role: admin, analyst or organisation"))?;
            let org = match role {
                Role::Organisation => {
                    let org = org.ok_or_else(|| anyhow::anyhow!("an organisation token needs --org"))?;
                    let c = botwatch::isp::constituency(cfg)?;
                    if c.as_ref().and_then(|c| c.get(&org)).is_none() {
                        bail!("--org {org}: not an organisation of the configured constituency");
                    }
                    Some(org)
                }
                _ => None,
            };
            let mut store = open_store(cfg, &db)?;
            let token = new_token()?;
            let id = store.create_token(
                &name,
                role.as_str(),
                org.as_deref(),
                &hash_token(&token),
                SystemClock.now(),
            )?;
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"id": id, "token": token, "role": role.as_str(), "org": org})
                )?;
            } else {
                writeln!(out, "{token}")?;
                eprintln!("token {id} ({}): shown once, keep it safe", role.as_str());
            }
        }
        TokenCmd::List { db, json } => {
            let store = open_read(cfg, &db)?;
            for t in store.tokens()? {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&t)?)?;
                } else {
                    writeln!(
                        out,
                        "{:>4}  {:<20} {:<12} {:<12} created {}  last used {}{}",
                        t.id,
                        t.name,
                        t.role,
                        t.org.as_deref().unwrap_or("-"),
                        t.created_at.to_rfc3339(),
                        t.last_used.map(|x| x.to_rfc3339()).unwrap_or_else(|| "never".into()),
                        if t.revoked_at.is_some() { "  REVOKED" } else { "" }
                    )?;
                }
            }
        }
        TokenCmd::Revoke { id, db } => {
            let mut store = open_existing(cfg, &db)?;
            if !store.revoke_token(id, SystemClock.now())? {
                bail!("no live token with id {id}");
            }
            writeln!(out, "token {id} revoked")?;
        }
    }
    Ok(())
}

fn sensor(cfg: &Config, cmd: SensorCmd, out: &mut dyn Write) -> Result<()> {
    use botwatch::sensor;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let SensorRun { db, flush, duration } = match &cmd {
        SensorCmd::Netflow { run, .. } | SensorCmd::Dnstap { run, .. } => run.clone(),
    };
    let mut store = open_store(cfg, &db)?;
    let snapshot = sensor::matcher_snapshot_path(&db.db.clone().unwrap_or_else(|| cfg.store.path.clone()));
    let mut matcher = Arc::new(sensor::matcher_cached(&store, &cfg.sensor, snapshot.as_deref())?.0);
    let mut generation = store.generation(sensor::SIGHTING_FEEDS)?;
    let scanner = Arc::new(Mutex::new(sensor::Scanner::new(matcher.clone(), &cfg.sensor, false)));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let scanner = scanner.clone();
        let stop = stop.clone();
        match cmd {
            SensorCmd::Netflow { listen, .. } => std::thread::spawn(move || -> Result<()> {
                botwatch_telemetry::flow::udp::serve(
                    listen,
                    |recs| {
                        let mut s = scanner.lock().unwrap_or_else(|e| e.into_inner());
                        for r in &recs {
                            s.flow(r);
                        }
                    },
                    &stop,
                )?;
                Ok(())
            }),
            SensorCmd::Dnstap { socket, .. } => std::thread::spawn(move || -> Result<()> {
                let sink = SharedDnsSink(scanner);
                botwatch_telemetry::dns::serve_unix(&socket, sink, &stop)?;
                Ok(())
            }),
        }
    };
    let started = std::time::Instant::now();
    let mut round = 0u64;
    loop {
        let done = duration.is_some_and(|d| started.elapsed().as_secs() >= d) || worker.is_finished();
        std::thread::sleep(std::time::Duration::from_millis(200));
        if !done && started.elapsed().as_secs() < (round + 1) * flush.max(1) {
            continue;
        }
        round += 1;
        // Indicators the feeds added since are compiled outside the lock; the receiving
        // thread keeps matching meanwhile and is held only for the swap. Unchanged
        // observations (the store's generation) are not compiled again.
        match store.generation(sensor::SIGHTING_FEEDS) {
            Ok(g) if g == generation => {}
            Ok(g) => match sensor::matcher_cached(&store, &cfg.sensor, snapshot.as_deref()) {
                Ok((m, _)) => {
                    matcher = Arc::new(m);
                    generation = g;
                }
                Err(e) => tracing::warn!("Keeping the previous indicators: {e:#}"),
            },
            Err(e) => tracing::warn!("Keeping the previous indicators: {e:#}"),
        }
        // Hand the window's findings to the store; a fresh scanner takes over.
        let finished = {
            let mut s = scanner.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *s, sensor::Scanner::new(matcher.clone(), &cfg.sensor, false))
        };
        let counts = finished.counts;
        let flagged = finished.finish();
        let (hits, found): (Vec<_>, Vec<_>) = flagged.iter().cloned().partition(|f| f.reason == "indicator");
        let tag = format!("sensor:{}:{}", std::process::id(), SystemClock.now().micros());
        let n = sensor::store_sightings(
            &mut store,
            &format!("{tag}:match"),
            "live sensor",
            &sensor::sightings(&hits, "match"),
        )? + sensor::store_sightings(
            &mut store,
            &format!("{tag}:detect"),
            "live sensor",
            &sensor::sightings(&found, "detect"),
        )?;
        writeln!(
            out,
            "{} flows, {} DNS records, {} hits, {} clients flagged, {} sightings stored",
            counts.flows,
            counts.dns,
            counts.hits,
            flagged.iter().map(|f| f.client).collect::<std::collections::BTreeSet<_>>().len(),
            n
        )?;
        out.flush()?;
        if done {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    match worker.join() {
        Ok(r) => r?,
        Err(_) => bail!("sensor thread panicked"),
    }
    Ok(())
}

/// The dnstap socket's sink: records into the shared scanner.
#[derive(Clone)]
struct SharedDnsSink(std::sync::Arc<std::sync::Mutex<botwatch::sensor::Scanner>>);

impl botwatch_telemetry::dns::DnsSink for SharedDnsSink {
    fn record(&mut self, r: botwatch_telemetry::record::DnsRecord) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).dns(&r);
    }
}
