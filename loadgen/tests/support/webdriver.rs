//! Headless Chromium driven over WebDriver: Debian's `chromium-driver`
//! (`chromedriver`, which `.ci/run` installs with `chromium`) on a loopback
//! port of its own, spoken to with fantoccini. Where either is not installed,
//! [`Browser::start`] says why and the test reports SKIPPED; where they are
//! but do not start, the test fails.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

use super::browser::{chromium, which, HEADLESS_FLAGS};

/// A browser session, and the driver behind it (stopped on drop).
pub struct Browser {
    pub client: Client,
    driver: Child,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile under
    /// `profile`, 1300×1000; `Err(why)` when they are not installed. Panics
    /// when they are but cannot be started.
    pub async fn start(profile: &Path) -> Result<Browser, String> {
        let chromium = chromium().ok_or("no chromium installed (.ci/run installs it)")?;
        let driver_path = which("chromedriver")
            .ok_or("no chromedriver installed (Debian's chromium-driver; .ci/run installs it)")?;
        match Browser::launch(&chromium, &driver_path, profile).await {
            Ok(browser) => Ok(browser),
            Err(why) => panic!("chromium and chromedriver are installed but: {why}"),
        }
    }

    async fn launch(
        chromium: &Path,
        driver_path: &Path,
        profile: &Path,
    ) -> Result<Browser, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        // In a process group of its own, so the browser it starts goes with it.
        let driver = Command::new(driver_path)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start chromedriver: {e}"))?;
        let mut browser_driver = DriverGuard(Some(driver));
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                return Err("chromedriver did not start listening".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut args: Vec<String> = HEADLESS_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push("--window-size=1300,1000".into());
        args.push(format!("--user-data-dir={}", profile.display()));
        let capabilities = json!({
            "goog:chromeOptions": { "binary": chromium, "args": args }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://{addr}"))
            .await
            .map_err(|e| format!("no WebDriver session: {e}"))?;
        Ok(Browser {
            client,
            driver: browser_driver.0.take().unwrap(),
        })
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Waits until `script` returns true, at most `within`; whether it did.
    pub async fn wait_for(&self, script: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.eval(script).await == Value::Bool(true) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// The errors the page kept (`window.loadgenErrors`).
    pub async fn errors(&self) -> Vec<String> {
        let errors = self
            .eval("return window.loadgenErrors || ['no error list'];")
            .await;
        serde_json::from_value(errors).unwrap_or_default()
    }

    /// Ends the session (the browser), then the driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        stop_group(&mut self.driver);
    }
}

/// Stops the driver and everything it started (its process group).
fn stop_group(driver: &mut Child) {
    // SAFETY: kill(2) on a process group this test made; no memory involved.
    unsafe {
        libc::kill(-(driver.id() as i32), libc::SIGKILL);
    }
    let _ = driver.wait();
}

/// Stops a driver started before the session exists, should it fail.
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            stop_group(&mut child);
        }
    }
}
