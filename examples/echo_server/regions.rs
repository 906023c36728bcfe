//! `--regions N`: many regions on one port, on [`Simulator`].

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::ExitCode;

use lsl_websocket::Config;
use lsl_websocket::adapter::OsEntropy;
use lsl_websocket::adapter::sim::Simulator;

use super::COMMANDS;
use super::args::Args;
use super::echo::Echo;

/// The running regions by index (indices are never reused).
struct Regions {
    sim: Simulator<Echo>,
    tags: BTreeMap<usize, u16>,
    next: usize,
    config: Config,
    secure: bool,
}

impl Regions {
    fn add(&mut self) -> Result<usize, String> {
        let index = self.next;
        let entropy = OsEntropy::new().map_err(|e| e.to_string())?;
        let echo = Echo::new(entropy, self.secure, format!(" region={index}"));
        let tag = self.sim.add_region(self.config.clone(), echo).map_err(|e| e.to_string())?;
        self.tags.insert(index, tag);
        self.next += 1;
        Ok(index)
    }

    fn remove(&mut self, index: usize) -> Result<(), String> {
        let tag = self.tags.remove(&index).ok_or_else(|| format!("no region {index}"))?;
        // The page and other untagged requests go to the lowest-numbered region
        // left, from before the removal starts (it waits for the region's sessions).
        let default = self.tags.values().next().copied();
        self.sim.set_default_region(default);
        self.sim.remove_region(tag);
        Ok(())
    }

    fn handle(&self, index: usize) -> Result<lsl_websocket::adapter::tokio::Handle<Echo>, String> {
        let tag = self.tags.get(&index).ok_or_else(|| format!("no region {index}"))?;
        self.sim.handle(*tag).ok_or_else(|| format!("no region {index}"))
    }

    /// Region `from`'s echo object crosses into region `to`.
    fn cross(&self, from: usize, to: usize) -> Result<(), String> {
        if from == to {
            return Err("cross needs two regions".into());
        }
        let (source, target) = (self.handle(from)?, self.handle(to)?);
        let info =
            source.blocking_query(|echo: &mut Echo, region, now| echo.leave(region, now)).map_err(|e| e.to_string())?;
        target.call(move |echo: &mut Echo, region, _now| echo.arrive(region, info)).map_err(|e| e.to_string())
    }

    /// One stdin line; `Ok(false)` on `quit`.
    fn command(&mut self, line: &str) -> Result<bool, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let index = |i: usize| -> Result<usize, String> {
            words.get(i).map_or(Ok(0), |w| w.parse().map_err(|_| format!("not a region index: {w}")))
        };
        match words.first().copied().unwrap_or("") {
            "" => {}
            "quit" => return Ok(false),
            "add-region" => {
                self.add()?;
            }
            "remove-region" => self.remove(index(1)?)?,
            "cross" => self.cross(index(1)?, index(2)?)?,
            c if COMMANDS.contains(&c) => {
                let command = c.to_string();
                self.handle(index(1)?)?
                    .call(move |echo: &mut Echo, region, now| echo.command(region, now, &command))
                    .map_err(|e| e.to_string())?;
            }
            other => {
                return Err(format!(
                    "unknown command {other:?}; commands: {} [I], add-region, remove-region I, cross I J, quit",
                    COMMANDS.join(", ")
                ));
            }
        }
        Ok(true)
    }
}

pub fn run(args: &Args, listeners: super::Listeners, base: Config) -> Result<ExitCode, String> {
    let secure = base.secure_authority.is_some();
    let sim = Simulator::new(listeners, base.clone()).map_err(|e| e.to_string())?;
    let mut regions = Regions { sim, tags: BTreeMap::new(), next: 0, config: base, secure };
    for _ in 0..args.regions {
        regions.add()?;
    }
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match regions.command(line.trim()) {
            Ok(true) => {}
            Ok(false) => {
                regions.sim.shutdown();
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => eprintln!("{e}"),
        }
    }
    // stdin's end does not stop the server.
    loop {
        std::thread::park();
    }
}
