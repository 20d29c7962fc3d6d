//! Just enough of the W3C WebDriver protocol to drive headless Chromium through chromedriver:
//! a session, navigation, elements by CSS, clicks, typing, text, waiting and screenshots.
//! chromedriver runs as a child process on a free loopback port and dies with the `Browser`.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::STANDARD};
use reqwest::Method;
use serde_json::{Value, json};

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const WAIT: Duration = Duration::from_secs(20);

/// A headless Chromium with one WebDriver session.
pub struct Browser {
    driver: Child,
    port: u16,
    base: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a browser session; `None` (after saying why) when chromedriver
    /// is not installed, unless `FRESHET_TEST_REQUIRE_BROWSER` is set: then that fails.
    pub async fn launch() -> Option<Self> {
        if !Path::new(CHROMEDRIVER).exists() {
            let why = format!(
                "{CHROMEDRIVER} is missing: install Debian's `chromium chromium-driver` to run the browser test"
            );
            assert!(
                std::env::var_os("FRESHET_TEST_REQUIRE_BROWSER").is_none(),
                "FRESHET_TEST_REQUIRE_BROWSER is set, but {why}"
            );
            eprintln!("skipping: {why}");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Self {
            driver,
            port,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            _profile: profile,
        };
        browser.wait_for_driver().await;
        let session = browser
            .call(Method::POST, "/session", json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--window-size=1366,900",
                    format!("--user-data-dir={}", browser._profile.path().display()),
                ]}
            }}}))
            .await
            .expect("a browser session starts");
        let id = session["sessionId"].as_str().expect("a session id");
        browser.base = format!("{}/session/{id}", browser.base);
        Some(browser)
    }

    async fn wait_for_driver(&self) {
        for _ in 0..100 {
            let ready = self.http.get(format!("{}/status", self.base)).send().await;
            if let Ok(r) = ready
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not become ready on port {}", self.port);
    }

    /// One WebDriver command; `Err` carries the driver's error message.
    async fn call(&self, method: Method, path: &str, body: Value) -> Result<Value, String> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if !body.is_null() {
            req = req.json(&body);
        }
        let res = req.send().await.map_err(|e| e.to_string())?;
        let ok = res.status().is_success();
        let v: Value = res.json().await.map_err(|e| e.to_string())?;
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(format!(
                "{}: {}",
                v["value"]["error"], v["value"]["message"]
            ))
        }
    }

    pub async fn goto(&self, url: &str) {
        self.call(Method::POST, "/url", json!({ "url": url }))
            .await
            .unwrap();
    }

    /// The elements matching `css`, as WebDriver element ids.
    pub async fn find_all(&self, css: &str) -> Vec<String> {
        let found = self
            .call(
                Method::POST,
                "/elements",
                json!({"using": "css selector", "value": css}),
            )
            .await
            .unwrap_or_default();
        found
            .as_array()
            .map(|all| {
                all.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The texts of the elements matching `css` (those that went stale meanwhile are left out).
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for id in self.find_all(css).await {
            if let Ok(t) = self
                .call(Method::GET, &format!("/element/{id}/text"), Value::Null)
                .await
            {
                out.push(t.as_str().unwrap_or_default().to_string());
            }
        }
        out
    }

    /// Waits until the texts of the elements matching `css` satisfy `done`; returns them.
    pub async fn wait_for(
        &self,
        css: &str,
        what: &str,
        done: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let texts = self.texts(css).await;
            if done(&texts) {
                return texts;
            }
            if tokio::time::Instant::now() > deadline {
                let shot = crate::dashboard::artifact("dashboard-failure.png");
                self.screenshot(&shot).await;
                panic!(
                    "waited {WAIT:?} for {what} ({css}); saw {texts:?}; screen in {}",
                    shot.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the first element matching `css`, once it exists.
    pub async fn click(&self, css: &str) {
        let id = self.first(css).await;
        self.call(Method::POST, &format!("/element/{id}/click"), json!({}))
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Types `text` into the first element matching `css`, once it exists.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.first(css).await;
        self.call(
            Method::POST,
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .await
        .unwrap_or_else(|e| panic!("typing into {css}: {e}"));
    }

    async fn first(&self, css: &str) -> String {
        self.wait_for(css, "an element", |t| !t.is_empty()).await;
        self.find_all(css).await.remove(0)
    }

    /// Saves a PNG of the window to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let png = self
            .call(Method::GET, "/screenshot", Value::Null)
            .await
            .expect("a screenshot");
        let png = STANDARD.decode(png.as_str().unwrap()).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    /// Ends the session (which closes Chromium) over a plain blocking request, since drop
    /// cannot await, then stops chromedriver.
    fn drop(&mut self) {
        let path = self
            .base
            .trim_start_matches(&format!("http://127.0.0.1:{}", self.port));
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(
                s,
                "DELETE {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = s.read(&mut [0; 512]);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
