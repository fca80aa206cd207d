//! `botwatch serve`: the web side alone (`botwatch run` serves it beside the jobs).

#[allow(unused_imports)]
use super::*;
use crate::cli::*;
use anyhow::Result;
use botwatch::config::Config;

/// What the server needs, from the config: the constituency, leases for attribution, the
/// case policy, the bar, remediation advice and the notice-link key.
pub(crate) fn serve(cfg: &Config, listen: Option<std::net::SocketAddr>, db: &DbArg) -> Result<()> {
    let path = db.db.clone().unwrap_or_else(|| cfg.store.path.clone());
    let prepared = botwatch::serve::prepare(cfg, path, listen)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let stop = botwatch_server::shutdown_signal();
        botwatch::serve::serve(prepared, stop).await
    })
}
