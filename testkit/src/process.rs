//! Child processes that say where they listen.
//!
//! Every service of the stack (gateway, backend, legacy stand-in, fake providers) can
//! listen on port 0, which the OS turns into a free port, and prints one line that names
//! its address (`… listening on http://127.0.0.1:41234 …`). Reading that line hands the
//! port over without a race: no port is picked by one process and bound by another, so
//! two tests (or an outgoing connection) can never end up on the same port. The same
//! line tells the harness the process has bound its port, so nothing polls for it.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

/// What a process prints once it listens; the URLs that follow it on the line are its
/// addresses, in the order the process gives them.
pub const ANNOUNCEMENT: &str = " listening on ";

/// The URLs (`http://host:port`) of an announcement line, or `None` for any other line.
pub fn announced_urls(line: &str) -> Option<Vec<String>> {
    let (_, rest) = line.split_once(ANNOUNCEMENT)?;
    let urls: Vec<String> = rest
        .split_whitespace()
        .filter(|word| word.starts_with("http://"))
        .map(|word| word.trim_end_matches('/').to_owned())
        .collect();
    (!urls.is_empty()).then_some(urls)
}

/// Starts `command` with its output appended to `log` (stderr directly, stdout line by
/// line) and waits, up to `within`, for the line announcing where it listens; returns the
/// child and the announced URLs. Fails with the log's tail when the process exits first
/// or says nothing in time.
pub async fn start_announced(
    name: &str,
    command: &mut Command,
    log: &Path,
    within: Duration,
) -> anyhow::Result<(Child, Vec<String>)> {
    let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(file.try_clone()?)
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let stdout = child.stdout.take().context("stdout is piped")?;
    let (tell, told) = oneshot::channel();
    tokio::spawn(copy_announcing(stdout, file, tell));
    // The copy ends, and `told` with it, when the process closes its stdout (exits).
    let urls = tokio::select! {
        urls = told => urls.ok(),
        () = tokio::time::sleep(within) => None,
    };
    if let Some(urls) = urls {
        return Ok((child, urls));
    }
    match tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
        Ok(Ok(status)) => bail!(
            "{name} exited ({status}) before it listened:\n{}",
            tail(log)
        ),
        _ => bail!(
            "{name} did not say where it listens within {within:?}:\n{}",
            tail(log)
        ),
    }
}

/// Waits, up to `within`, until `url` (`http://host:port`) accepts TCP connections.
pub async fn wait_accepting(url: &str, within: Duration) -> anyhow::Result<()> {
    let addr = url.trim_start_matches("http://");
    let started = std::time::Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if started.elapsed() > within {
            bail!("nothing accepts connections at {addr} after {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Copies the child's stdout into its log, handing the first announcement's URLs over.
async fn copy_announcing(
    stdout: tokio::process::ChildStdout,
    mut file: std::fs::File,
    tell: oneshot::Sender<Vec<String>>,
) {
    let mut tell = Some(tell);
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let _ = writeln!(file, "{line}");
        if let Some(urls) = announced_urls(&line)
            && let Some(tell) = tell.take()
        {
            let _ = tell.send(urls);
        }
    }
}

/// Runs `command` to its end (stdin closed): whether it succeeded, and what it printed,
/// stdout then stderr. Panics when it cannot be started.
pub async fn run_to_end(command: &mut tokio::process::Command) -> (bool, String) {
    let output = command
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{command:?} cannot run: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// The last 30 lines of a log file.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_url_of_an_announcement() {
        assert_eq!(
            announced_urls(
                "studyflow-gateway listening on http://127.0.0.1:4100 admin http://127.0.0.1:4101"
            ),
            Some(vec![
                "http://127.0.0.1:4100".to_owned(),
                "http://127.0.0.1:4101".to_owned()
            ])
        );
        assert_eq!(
            announced_urls("legacy stand-in listening on http://127.0.0.1:5000/"),
            Some(vec!["http://127.0.0.1:5000".to_owned()])
        );
        assert_eq!(
            announced_urls("INFO backend listening addr=127.0.0.1:1"),
            None
        );
        assert_eq!(announced_urls("GET /health 200"), None);
    }

    #[tokio::test]
    async fn a_process_that_exits_before_listening_is_reported_with_its_log() {
        let dir =
            std::env::temp_dir().join(format!("sf-announce-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let log = dir.join("early.log");
        let mut command = Command::new("sh");
        command.args(["-c", "echo about to fail; exit 3"]);
        let error = start_announced("early", &mut command, &log, Duration::from_secs(10))
            .await
            .expect_err("no announcement");
        let text = format!("{error:#}");
        assert!(
            text.contains("exited") && text.contains("about to fail"),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_announced_port_is_handed_over_and_output_keeps_going_to_the_log() {
        let dir =
            std::env::temp_dir().join(format!("sf-announce-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let log = dir.join("talker.log");
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "echo starting; echo 'talker listening on http://127.0.0.1:4242'; echo after; sleep 5",
        ]);
        let (mut child, urls) =
            start_announced("talker", &mut command, &log, Duration::from_secs(10))
                .await
                .expect("announced");
        assert_eq!(urls, vec!["http://127.0.0.1:4242".to_owned()]);
        let _ = child.kill().await;
        let text = std::fs::read_to_string(&log).expect("log");
        assert!(
            text.contains("starting") && text.contains("talker listening"),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
