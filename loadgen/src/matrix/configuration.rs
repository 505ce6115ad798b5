//! What one entry of a run starts: a server variant, under the name the report
//! gives it, with any extra server flags. Plain variants have no flags; the
//! bounded-pool ablation (`loadgen run --ablation`) runs one variant several ways
//! in one run, so that each ingredient's effect is measured under the same
//! conditions.

use servers::variant::Variant;

/// One server configuration of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Configuration {
    pub variant: Variant,
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
            variant,
            name: variant.name().into(),
            args: Vec::new(),
        }
    }

    /// The bounded-pool ablation: the variant as it ships, then with each
    /// ingredient taken away (and the other priority tried), so a reader sees
    /// which one buys what.
    pub fn ablation() -> Vec<Configuration> {
        let with = |suffix: &str, args: &[&str]| Configuration {
            variant: Variant::BoundedPool,
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
        if self.args.is_empty() {
            self.variant.summary().into()
        } else {
            format!("{} (with {})", self.variant.summary(), self.args.join(" "))
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
        assert!(runs.iter().all(|c| c.variant == Variant::BoundedPool));
        assert!(runs[0].args.is_empty());
        assert_eq!(runs[0].summary(), Variant::BoundedPool.summary());
        assert!(runs[4]
            .summary()
            .ends_with("(with --pool-priority normal --unbounded-queue)"));
    }
}
