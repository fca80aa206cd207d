//! The command line: every command, subcommand and argument (clap derive). `main.rs`
//! parses with these, `commands` acts on them, and `completions` and `man` are made from them.

use anyhow::{Context, Result};
use botwatch::output::Format;
use botwatch_model::{Timestamp, parse_timestamp};
use botwatch_store::EventQuery;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Exit codes: 0 success; 1 error; 2 bad usage; 3 some inputs could not be ingested at all
/// (unreadable, unrecognised); 4 some feeds could not be fetched.
/// `--version`: the commit built and the date of the shipped IP → ASN data (build.rs).
pub(crate) const VERSION: &str = concat!(
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
pub(crate) struct Cli {
    /// Configuration file [default: ./botwatch.toml, else /etc/botwatch/botwatch.toml, else
    /// built-in defaults]
    #[arg(long, global = true, env = "BOTWATCH_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Log level filter (error, warn, info, debug), or RUST_LOG syntax
    #[arg(long, global = true, default_value = "warn", env = "BOTWATCH_LOG")]
    pub(crate) log: String,
    /// Log lines as text (coloured only when stderr is a terminal) or as JSON objects
    #[arg(long, global = true, value_enum, default_value = "text", env = "BOTWATCH_LOG_FORMAT")]
    pub(crate) log_format: LogFormat,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Args, Clone)]
pub(crate) struct DbArg {
    /// SQLite database [default: store.path from config, else ./botwatch.db]
    // Global: `botwatch cases update --db X` as well as `botwatch cases --db X update`.
    #[arg(long, env = "BOTWATCH_DB", global = true)]
    pub(crate) db: Option<PathBuf>,
}

#[derive(Args, Clone, Default)]
pub(crate) struct Filters {
    /// Only this address
    #[arg(long)]
    pub(crate) ip: Option<std::net::IpAddr>,
    /// Only addresses inside this network
    #[arg(long)]
    pub(crate) cidr: Option<ipnet::IpNet>,
    /// Only this source AS number
    #[arg(long)]
    pub(crate) asn: Option<u32>,
    /// Only this source country (ISO code)
    #[arg(long)]
    pub(crate) country: Option<String>,
    /// Only this malware family (aliases allowed)
    #[arg(long)]
    pub(crate) family: Option<String>,
    /// Only this feed id
    #[arg(long)]
    pub(crate) feed: Option<String>,
    /// Only this classification.type (e.g. infected-system)
    #[arg(long = "type")]
    pub(crate) ty: Option<String>,
    /// From this time (RFC 3339 or YYYY-MM-DD)
    #[arg(long)]
    pub(crate) since: Option<String>,
    /// Before this time
    #[arg(long)]
    pub(crate) until: Option<String>,
    /// Only rows after this id (cursor for paging)
    #[arg(long)]
    pub(crate) after: Option<i64>,
    /// At most this many rows
    #[arg(long)]
    pub(crate) limit: Option<u64>,
}

impl Filters {
    pub(crate) fn query(&self, families: &botwatch_model::FamilyTable) -> Result<EventQuery> {
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
pub(crate) enum Cmd {
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
    /// logs, DNS pcaps; detected; gzipped or zipped too) against the store's active indicators and run the DGA, NXDOMAIN,
    /// beaconing, scan, upload, spam and flood detectors; findings are stored as sightings
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
        /// Indicator matching only: skip the DGA, NXDOMAIN, beaconing, scan, upload, spam and flood detectors
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
    /// Score the sensors' detectors on labelled captures
    Eval {
        #[command(subcommand)]
        cmd: EvalCmd,
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
    /// Store what intake published to NATS JetStream ([nats] url): takes deliveries one at a
    /// time from the shared durable consumer and acknowledges each once stored. Run as many
    /// as wanted, on one machine or many, against the same store ([store] url). Until
    /// SIGTERM or SIGINT (the delivery at hand is finished first)
    Worker {
        /// Exit once no delivery has arrived for this long (e.g. "30s"); for batch runs and
        /// tests [default: run until signalled]
        #[arg(long)]
        idle_exit: Option<humantime::Duration>,
        /// This worker's name on /metrics and the dashboard (e.g. the systemd instance:
        /// `--name %H-%i`), the same after a restart [default: host/pid]
        #[arg(long)]
        name: Option<String>,
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
        /// Run the demo on PostgreSQL instead of the SQLite file (an empty database: the
        /// demo refuses one that holds reports); the written config points at it
        #[arg(long)]
        store_url: Option<String>,
    },
}

#[derive(Subcommand)]
pub(crate) enum ReportsCmd {
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
pub(crate) enum LeasesCmd {
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
pub(crate) enum TokenCmd {
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
pub(crate) enum NotifyCmd {
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
pub(crate) enum WalledGardenCmd {
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
pub(crate) enum SensorCmd {
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
pub(crate) struct SensorRun {
    #[command(flatten)]
    pub(crate) db: DbArg,
    /// Store sightings and print a summary this often (seconds)
    #[arg(long, default_value_t = 60)]
    pub(crate) flush: u64,
    /// Stop after this many seconds (default: run until killed)
    #[arg(long)]
    pub(crate) duration: Option<u64>,
}

#[derive(Subcommand)]
pub(crate) enum DgaCmd {
    /// Score domain names (arguments, or one per line on stdin): 0..1 and a verdict
    Score {
        domains: Vec<String>,
        /// One JSON object per name
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum EvalCmd {
    /// Run the detectors over labelled captures (files, or folders searched for them: Zeek
    /// conn/dns logs, Argus binetflow, nfcapd, pcaps) and score them per client: infected
    /// clients found and missed, benign and Internet hosts wrongly flagged
    Flows {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Ground truth for captures without per-flow labels (TOML, entries as in the
        /// built-in one); its entries take precedence
        #[arg(long)]
        truth: Option<PathBuf>,
        /// One JSON object per capture, then one with the totals
        #[arg(long)]
        json: bool,
    },
    /// Score the DGA model leaving whole families out: the labelled names (a folder laid out
    /// as ../shared/data/dga: benign names in umudga/legit_first*.txt, DGA names in
    /// umudga/<family>_1000.txt and in any family,domain CSV at its top) split
    /// into folds of families, one model trained per fold without its families, each family
    /// scored only by the model that never saw it; per-family TPR per name at the fold's
    /// threshold (≤ 0.5 % FPR on validation benign names) and per client (ten names, their mean
    /// score against the client threshold), and the FPRs on benign names never trained on
    Dga {
        /// The labelled-names folder
        dir: PathBuf,
        /// Folds of families; 0 holds out one family at a time (one model per family)
        #[arg(long, default_value_t = botwatch_telemetry::detect::dga::train::FOLDS)]
        folds: usize,
        /// One JSON object with every figure
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum GeoCmd {
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
pub(crate) enum ExportFormat {
    Intelmq,
    Jsonl,
    Csv,
    Stix,
    MispFeed,
}

#[derive(Subcommand)]
pub(crate) enum ShareCmd {
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
pub(crate) enum BarCmd {
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
pub(crate) enum FederationCmd {
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
pub(crate) enum TaxiiCmd {
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
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum By {
    Family,
    Asn,
    Country,
    Day,
    Feed,
    Type,
}
