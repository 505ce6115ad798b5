//! What one entry of a run starts: a built-in server variant, under the name the
//! report gives it, with any extra server flags, or an external server from a
//! servers file (`--servers`). Plain variants have no flags; the bounded-pool
//! ablation (`loadgen run --ablation`) runs one variant several ways in one run,
//! so that each ingredient's effect is measured under the same conditions.

use std::sync::Arc;

use servers::variant::Variant;

use crate::external::ExternalServer;

/// What a configuration starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Server {
    /// A reference server, `loadgen serve --variant NAME`.
    Builtin(Variant),
    /// A command line from a servers file.
    External(Arc<ExternalServer>),
}

/// One server configuration of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Configuration {
    pub server: Server,
    /// The name in reports and file names: the variant's, or the variant's with a
    /// suffix for a non-default configuration.
    pub name: String,
    /// Server flags beyond the ones every variant gets.
    pub args: Vec<String>,
}

impl Configuration {
    /// `variant` as it ships.
    pub fn plain(variant: Variant) -> Configuration {
        Configuration {
            server: Server::Builtin(variant),
            name: variant.name().into(),
            args: Vec::new(),
        }
    }

    /// An external server.
    pub fn external(server: ExternalServer) -> Configuration {
        Configuration {
            name: server.name.clone(),
            server: Server::External(Arc::new(server)),
            args: Vec::new(),
        }
    }

    /// The external server it starts, if it is one.
    pub fn as_external(&self) -> Option<&ExternalServer> {
        match &self.server {
            Server::External(external) => Some(external),
            Server::Builtin(_) => None,
        }
    }

    /// The probe's path.
    pub fn probe_path(&self) -> &str {
        self.as_external()
            .map_or("/health", |e| e.probe_path.as_str())
    }

    /// What it mirrors: for a built-in variant the FastAPI answer, for an
    /// external server what its file says (the built-in variant, usually).
    pub fn mirrors(&self) -> String {
        match &self.server {
            Server::Builtin(variant) => variant.mirrors().into(),
            Server::External(external) => external.mirrors.clone(),
        }
    }

    /// The bounded-pool ablation: the variant as it ships, then with each
    /// ingredient taken away (and the other priority tried), so a reader sees
    /// which one buys what.
    pub fn ablation() -> Vec<Configuration> {
        let with = |suffix: &str, args: &[&str]| Configuration {
            server: Server::Builtin(Variant::BoundedPool),
            name: format!("bounded-pool-{suffix}"),
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        vec![
            Configuration::plain(Variant::BoundedPool),
            with("nice-priority", &["--pool-priority", "nice"]),
            with("normal-priority", &["--pool-priority", "normal"]),
            with("unbounded", &["--unbounded-queue"]),
            with(
                "neither",
                &["--pool-priority", "normal", "--unbounded-queue"],
            ),
        ]
    }

    /// One line on what this configuration runs.
    pub fn summary(&self) -> String {
        let variant = match &self.server {
            Server::Builtin(variant) => *variant,
            Server::External(external) if external.description.is_empty() => {
                return format!("external: {}", external.command.join(" "))
            }
            Server::External(external) => return external.description.clone(),
        };
        if self.args.is_empty() {
            variant.summary().into()
        } else {
            format!("{} (with {})", variant.summary(), self.args.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ablation_takes_each_ingredient_away_under_its_own_name() {
        let runs = Configuration::ablation();
        let names: Vec<&str> = runs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "bounded-pool",
                "bounded-pool-nice-priority",
                "bounded-pool-normal-priority",
                "bounded-pool-unbounded",
                "bounded-pool-neither"
            ]
        );
        assert!(runs
            .iter()
            .all(|c| c.server == Server::Builtin(Variant::BoundedPool)));
        assert!(runs[0].args.is_empty());
        assert_eq!(runs[0].summary(), Variant::BoundedPool.summary());
        assert!(runs[4]
            .summary()
            .ends_with("(with --pool-priority normal --unbounded-queue)"));
    }
}
