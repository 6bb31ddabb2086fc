//! The background loops that keep the flag sources fresh: the routes-file watch, the
//! Unleash poll, and the fleet subscription (Redis pub/sub) with its periodic resync.
//! Each reports to [`Control`], which swaps the table when what is in force changes and
//! keeps the last good state when a source fails.

use std::sync::Arc;
use std::time::Duration;

use pingora::server::ShutdownWatch;
use studyflow_flags::FlagSource;
use studyflow_flags::unleash::UnleashSource;
use tokio::sync::Notify;

use crate::control::Control;

/// How often the routes file is checked for changes.
const FILE_POLL: Duration = Duration::from_secs(2);
/// First and longest wait before subscribing again after the subscription dropped.
const RESUBSCRIBE_MIN: Duration = Duration::from_millis(200);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(5);

/// The flag sources' loops as a service of the server, started whatever else fails.
#[derive(Debug)]
pub struct FlagSources {
    pub control: Arc<Control>,
    /// How often the fleet's overrides are re-read besides announcements.
    pub resync: Duration,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for FlagSources {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        spawn(&self.control, self.resync, &shutdown);
        let _ = shutdown.changed().await;
    }
}

/// Starts every loop on the current runtime; they stop with the gateway.
pub fn spawn(control: &Arc<Control>, resync: Duration, shutdown: &ShutdownWatch) {
    spawn_until_shutdown(shutdown, watch_file(Arc::clone(control)));
    if control.unleash_settings().is_some() {
        spawn_until_shutdown(shutdown, poll_unleash(Arc::clone(control)));
    }
    if control.fleet().is_some() {
        let wake = Arc::new(Notify::new());
        spawn_until_shutdown(shutdown, subscribe(Arc::clone(control), Arc::clone(&wake)));
        spawn_until_shutdown(
            shutdown,
            resync_overrides(Arc::clone(control), wake, resync),
        );
    }
}

fn spawn_until_shutdown(
    shutdown: &ShutdownWatch,
    task: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let mut stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = task => {}
            _ = stop.changed() => {}
        }
    });
}

async fn watch_file(control: Arc<Control>) {
    loop {
        tokio::time::sleep(FILE_POLL).await;
        control.reload_if_changed().await;
    }
}

async fn poll_unleash(control: Arc<Control>) {
    let Some(settings) = control.unleash_settings().cloned() else {
        return;
    };
    let source = match UnleashSource::new(&settings) {
        Ok(source) => source,
        Err(error) => {
            tracing::error!(%error, "the Unleash source cannot start");
            return;
        }
    };
    if let Err(error) = source.register().await {
        tracing::warn!(%error, "could not register with Unleash");
    }
    loop {
        control.unleash_fetched(source.fetch().await).await;
        tokio::time::sleep(settings.refresh).await;
    }
}

/// Keeps a subscription to the fleet's announcements; wakes the resync loop once
/// subscribed (to catch up on anything missed) and on every announcement.
async fn subscribe(control: Arc<Control>, wake: Arc<Notify>) {
    let Some(fleet) = control.fleet() else {
        return;
    };
    let mut backoff = RESUBSCRIBE_MIN;
    loop {
        let started = tokio::time::Instant::now();
        let error = fleet.listen(&wake).await;
        control.fleet_disconnected(&error);
        if started.elapsed() > RESUBSCRIBE_MAX {
            backoff = RESUBSCRIBE_MIN;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RESUBSCRIBE_MAX);
    }
}

async fn resync_overrides(control: Arc<Control>, wake: Arc<Notify>, every: Duration) {
    loop {
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(every) => {}
        }
        control.refresh_overrides().await;
    }
}
