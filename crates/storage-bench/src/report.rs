//! Results: a markdown table on stdout and `target/bench/results.json`.

use serde::Serialize;

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub scenario: &'static str,
    pub provider: &'static str,
    pub metric: String,
    pub value: f64,
    pub unit: &'static str,
    /// The floor's value of the same metric, when there is one.
    pub floor: Option<f64>,
    /// `value / floor`.
    pub ratio: Option<f64>,
    /// The target, in words.
    pub target: String,
    /// `None` for figures without a target.
    pub pass: Option<bool>,
}

impl Figure {
    pub fn info(
        scenario: &'static str,
        provider: &'static str,
        metric: impl Into<String>,
        value: f64,
        unit: &'static str,
    ) -> Self {
        Self {
            scenario,
            provider,
            metric: metric.into(),
            value,
            unit,
            floor: None,
            ratio: None,
            target: String::new(),
            pass: None,
        }
    }

    pub fn against_floor(mut self, floor: f64, min_ratio: f64) -> Self {
        let ratio = if floor > 0.0 { self.value / floor } else { 0.0 };
        self.floor = Some(floor);
        self.ratio = Some(ratio);
        self.target = format!("≥ {min_ratio:.2} × floor");
        self.pass = Some(ratio >= min_ratio);
        self
    }

    pub fn at_most(mut self, max: f64, what: &str) -> Self {
        self.target = format!("≤ {max:.0} {what}");
        self.pass = Some(self.value <= max);
        self
    }

    pub fn at_least(mut self, min: f64, what: &str) -> Self {
        self.target = format!("≥ {min} {what}");
        self.pass = Some(self.value >= min);
        self
    }
}

/// Prints the table and writes the JSON; returns whether every target passed.
pub fn publish(figures: &[Figure], machine: &str, quick: bool) -> Result<bool, String> {
    println!(
        "\n## storage-bench{} on {machine}\n",
        if quick { " --quick" } else { "" }
    );
    println!("| # | provider | metric | value | floor | ratio | target | result |");
    println!("|---|---|---|---|---|---|---|---|");
    for f in figures {
        println!(
            "| {} | {} | {} | {:.2} {} | {} | {} | {} | {} |",
            f.scenario,
            f.provider,
            f.metric,
            f.value,
            f.unit,
            f.floor.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into()),
            f.ratio.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into()),
            if f.target.is_empty() { "-" } else { &f.target },
            match f.pass {
                Some(true) => "PASS",
                Some(false) => "FAIL",
                None => "-",
            }
        );
    }
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let json = serde_json::json!({"machine": machine, "quick": quick, "figures": figures});
    let path = dir.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    println!("\nwritten: {}", path.display());
    Ok(figures.iter().all(|f| f.pass != Some(false)))
}

fn target_dir() -> std::path::PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return d.into();
    }
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

/// `nproc`, the CPU model and the memory, for the report.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<u64>().unwrap_or(0))
        })
        .unwrap_or(0);
    format!("{cpus} cpus ({model}), {} GiB", mem / 1024 / 1024)
}

/// The median of some runs.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
