//! The servers file (`loadgen run --servers FILE.toml`): external servers, each
//! described well enough to run through the same phases as a built-in variant.
//!
//! ```toml
//! [[server]]
//! name = "fastapi-process-pool"
//! description = "async def awaiting run_in_executor on a ProcessPoolExecutor"
//! mirrors = "rayon"                          # the built-in variant it mirrors
//! command = ["../../target/fastapi-venv/bin/python", "-m", "uvicorn", "app:app",
//!            "--port", "{port}"]             # {port}: a free loopback port
//! cwd = "."                                  # relative to this file's folder
//! env = { RECIPE = "process-pool", POOL_SIZE = "{cores}" }
//! setup = "scripts/fastapi-env.sh"           # said when the program is missing
//! ready_path = "/health"
//! ready_timeout = "30s"
//! probe_path = "/health"
//! heavy_path = "/work/cpu?units={units}"     # {units}: the job size
//! jobs_path = "/jobs"                        # optional: POST /jobs, GET /jobs/{id}
//! stop_signal = "TERM"
//! stop_grace = "5s"
//! ```
//!
//! Instead of `{port}`, `port_after = "running on http://127.0.0.1:"` reads the
//! port from the first line of the server's output that holds the text, where
//! the digits after it are the port. Relative paths (`cwd`, a program with a `/`)
//! count from the file's folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Default readiness timeout: interpreters and their imports take seconds.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time a stopped server may take before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServersFile {
    #[serde(default)]
    server: Vec<EntryFile>,
}

/// One `[[server]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    mirrors: String,
    command: Vec<String>,
    cwd: Option<PathBuf>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    setup: Option<String>,
    port_after: Option<String>,
    #[serde(default = "default_health")]
    ready_path: String,
    #[serde(default, with = "humantime_serde")]
    ready_timeout: Option<Duration>,
    #[serde(default = "default_health")]
    probe_path: String,
    heavy_path: String,
    jobs_path: Option<String>,
    #[serde(default = "default_stop_signal")]
    stop_signal: String,
    #[serde(default, with = "humantime_serde")]
    stop_grace: Option<Duration>,
}

fn default_health() -> String {
    "/health".into()
}

fn default_stop_signal() -> String {
    "TERM".into()
}

/// How loadgen learns the server's port.
#[derive(Debug, Clone, PartialEq)]
pub enum PortSource {
    /// loadgen picks a free loopback port and puts it where `{port}` is written.
    Placeholder,
    /// The digits after this text, in the first line of output that holds it.
    After(String),
}

/// One external server, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalServer {
    pub name: String,
    pub description: String,
    /// The built-in variant (or recipe) it mirrors, for the reader.
    pub mirrors: String,
    /// The command line, placeholders still in.
    pub command: Vec<String>,
    /// Its working directory, absolute.
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
    /// What to run when the program is missing.
    pub setup: Option<String>,
    pub port: PortSource,
    pub ready_path: String,
    pub ready_timeout: Duration,
    pub probe_path: String,
    /// The heavy request's path; `{units}` is the job size, if it takes one.
    pub heavy_path: String,
    pub jobs_path: Option<String>,
    /// Signal number that asks it to stop.
    pub stop_signal: i32,
    pub stop_grace: Duration,
}

/// Names a servers file may not take: they are the built-in variants'.
fn reserved(name: &str) -> bool {
    name.parse::<servers::variant::Variant>().is_ok()
}

/// Reads and checks the servers file at `path`; the error names the file and the
/// entry at fault.
pub fn load(path: &Path) -> Result<Vec<ExternalServer>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: ServersFile =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::path::absolute(base).map_err(|e| format!("{}: {e}", path.display()))?;
    if file.server.is_empty() {
        return Err(format!(
            "{} describes no server; add a [[server]] table",
            path.display()
        ));
    }
    let mut servers: Vec<ExternalServer> = Vec::new();
    for entry in file.server {
        let name = entry.name.clone();
        let server = check(entry, &base).map_err(|e| format!("{}: {name}: {e}", path.display()))?;
        if servers.iter().any(|s| s.name == server.name) {
            return Err(format!("{}: the name {name} is used twice", path.display()));
        }
        servers.push(server);
    }
    Ok(servers)
}

/// Checks one entry.
fn check(entry: EntryFile, base: &Path) -> Result<ExternalServer, String> {
    let name_ok = !entry.name.is_empty()
        && entry
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return Err("a name is letters, digits, - and _ (it names files)".into());
    }
    if reserved(&entry.name) {
        return Err("the name is a built-in variant's; choose another".into());
    }
    if entry.command.is_empty() || entry.command[0].is_empty() {
        return Err("command is empty; give the program and its arguments".into());
    }
    let placeholder = entry.command.iter().any(|a| a.contains("{port}"))
        || entry.env.values().any(|v| v.contains("{port}"));
    let port = match (&entry.port_after, placeholder) {
        (Some(_), true) => {
            return Err("give either {port} in the command or port_after, not both".into())
        }
        (Some(text), false) if text.is_empty() => {
            return Err("port_after is empty; give the text printed before the port".into())
        }
        (Some(text), false) => PortSource::After(text.clone()),
        (None, true) => PortSource::Placeholder,
        (None, false) => return Err(
            "the server's port is unknown: put {port} in its command (or env), or set port_after"
                .into(),
        ),
    };
    for (what, path) in [
        ("ready_path", &entry.ready_path),
        ("probe_path", &entry.probe_path),
        ("heavy_path", &entry.heavy_path),
    ]
    .into_iter()
    .chain(entry.jobs_path.iter().map(|p| ("jobs_path", p)))
    {
        if !path.starts_with('/') {
            return Err(format!("{what} {path:?} must start with /"));
        }
    }
    let stop_signal = crate::guard::parse_signal(&entry.stop_signal)?;
    let cwd = entry
        .cwd
        .map_or_else(|| base.to_path_buf(), |cwd| base.join(cwd));
    Ok(ExternalServer {
        name: entry.name,
        description: entry.description,
        mirrors: entry.mirrors,
        command: entry.command,
        cwd,
        env: entry.env,
        setup: entry.setup,
        port,
        ready_path: entry.ready_path,
        ready_timeout: entry.ready_timeout.unwrap_or(READY_TIMEOUT),
        probe_path: entry.probe_path,
        heavy_path: entry.heavy_path,
        jobs_path: entry.jobs_path,
        stop_signal,
        stop_grace: entry.stop_grace.unwrap_or(STOP_GRACE),
    })
}

impl ExternalServer {
    /// The heavy request's path for a job of `units`.
    pub fn heavy_path(&self, units: u64) -> String {
        self.heavy_path.replace("{units}", &units.to_string())
    }

    /// Whether the heavy request's size can be chosen (`{units}` in its path).
    pub fn sized(&self) -> bool {
        self.heavy_path.contains("{units}")
    }

    /// `text` with the run's placeholders filled in.
    pub fn fill(text: &str, port: Option<u16>, cores: usize) -> String {
        let text = text.replace("{cores}", &cores.to_string());
        match port {
            Some(port) => text.replace("{port}", &port.to_string()),
            None => text,
        }
    }

    /// Why the server cannot start here, before anything runs: its program is
    /// missing (with what to run to set it up).
    pub fn missing_program(&self) -> Option<String> {
        let program = &self.command[0];
        let found = if program.contains('/') {
            self.cwd.join(program).is_file()
        } else {
            std::env::var_os("PATH").is_some_and(|paths| {
                std::env::split_paths(&paths).any(|dir| dir.join(program).is_file())
            })
        };
        if found {
            return None;
        }
        let mut message = format!(
            "{}: {program} not found (from {})",
            self.name,
            self.cwd.display()
        );
        if let Some(setup) = &self.setup {
            message.push_str(&format!("; set it up with: {setup}"));
        }
        Some(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<ExternalServer>, String> {
        let dir = std::env::temp_dir().join(format!("loadgen-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("servers-{}.toml", text.len()));
        std::fs::write(&path, text).unwrap();
        let result = load(&path);
        std::fs::remove_file(&path).unwrap();
        result
    }

    const MINIMAL: &str = r#"
        [[server]]
        name = "mine"
        command = ["./serve", "--port", "{port}"]
        heavy_path = "/work?units={units}"
    "#;

    #[test]
    fn an_entry_gets_defaults_and_paths_from_its_file() {
        let servers = parse(MINIMAL).unwrap();
        let s = &servers[0];
        assert_eq!(s.port, PortSource::Placeholder);
        assert_eq!(
            (s.ready_path.as_str(), s.probe_path.as_str()),
            ("/health", "/health")
        );
        assert_eq!(s.stop_signal, libc::SIGTERM);
        assert_eq!(s.stop_grace, STOP_GRACE);
        assert!(
            s.cwd.is_absolute()
                && s.cwd
                    .ends_with(format!("loadgen-spec-{}", std::process::id()))
        );
        assert_eq!(s.heavy_path(25), "/work?units=25");
        assert!(s.sized());
        assert_eq!(
            ExternalServer::fill("-p {port} -w {cores}", Some(81), 2),
            "-p 81 -w 2"
        );
    }

    #[test]
    fn bad_entries_are_refused_with_the_reason() {
        let cases = [
            (MINIMAL.replace("\"mine\"", "\"rayon\""), "built-in"),
            (MINIMAL.replace("\"mine\"", "\"a b\""), "letters"),
            (MINIMAL.replace("{port}", "8080"), "port is unknown"),
            (MINIMAL.replace("/work?", "work?"), "must start with /"),
            (
                format!("{MINIMAL}\nstop_signal = \"USR1\""),
                "unknown stop signal",
            ),
            (format!("{MINIMAL}\nport_after = \"on :\""), "not both"),
            (format!("{MINIMAL}{MINIMAL}"), "used twice"),
            (format!("{MINIMAL}\ncolour = 1"), "unknown field"),
            (String::new(), "describes no server"),
        ];
        for (text, expected) in cases {
            let error = parse(&text).unwrap_err();
            assert!(
                error.contains(expected),
                "{error:?} should say {expected:?}"
            );
        }
    }

    #[test]
    fn a_missing_program_names_its_setup() {
        let text = MINIMAL.replace("heavy_path", "setup = \"scripts/make-it.sh\"\nheavy_path");
        let servers = parse(&text).unwrap();
        let message = servers[0].missing_program().unwrap();
        assert!(message.contains("./serve not found") && message.contains("scripts/make-it.sh"));
        let on_path = parse(&MINIMAL.replace("./serve", "sh")).unwrap();
        assert_eq!(on_path[0].missing_program(), None);
    }
}
