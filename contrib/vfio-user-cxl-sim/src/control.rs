// SPDX-License-Identifier: GPL-2.0-or-later

//! Observability for tests: counters and a line-based control socket.
//!
//! Protocol: one command per line in, one JSON object per line out.
//! Every reply has `"ok"`: true or false (then `"error"` says why).
//! Commands are listed in [`crate::options::AFTER_HELP`].

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use serde_json::{json, Value};

use crate::options::parse_number;
use crate::server::Simulator;

/// Event counters, shared by the server, the device and the control
/// socket.  They only grow for the lifetime of the process.
#[derive(Debug, Default)]
pub struct Stats {
    pub resets: AtomicU64,
    pub reset_failures: AtomicU64,
    pub dma_maps: AtomicU64,
    pub dma_unmaps: AtomicU64,
    pub comp_regs_writes: AtomicU64,
    pub config_writes: AtomicU64,
    pub connections: AtomicU64,
    /// Clients refused because another one was connected.
    pub busy_refusals: AtomicU64,
    pub messages: AtomicU64,
    pub irq_sets: AtomicU64,
    pub cxl_resets: AtomicU64,
    pub cache_wbis: AtomicU64,
    /// v4: memory region reads/writes refused (EIO) while the host gates
    /// the memory.
    pub gated_accesses: AtomicU64,
    /// v4: CXL resets that cleared the device memory.
    pub memory_clears: AtomicU64,
    /// v4: times the memory was hidden from or shown to mappings.
    pub memory_gate_changes: AtomicU64,
    /// v4: raw BAR accesses touching the HDM decoder block (reads all
    /// ones, writes dropped).
    pub hdm_bar_accesses: AtomicU64,
    /// Hostile mode: replies answered wrongly.
    pub hostile_faults: AtomicU64,
}

impl Stats {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters as a JSON object.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        json!({
            "resets": g(&self.resets),
            "reset_failures": g(&self.reset_failures),
            "dma_maps": g(&self.dma_maps),
            "dma_unmaps": g(&self.dma_unmaps),
            "comp_regs_writes": g(&self.comp_regs_writes),
            "config_writes": g(&self.config_writes),
            "connections": g(&self.connections),
            "messages": g(&self.messages),
            "irq_sets": g(&self.irq_sets),
            "cxl_resets": g(&self.cxl_resets),
            "cache_wbis": g(&self.cache_wbis),
            "gated_accesses": g(&self.gated_accesses),
            "busy_refusals": g(&self.busy_refusals),
            "memory_clears": g(&self.memory_clears),
            "memory_gate_changes": g(&self.memory_gate_changes),
            "hdm_bar_accesses": g(&self.hdm_bar_accesses),
            "hostile_faults": g(&self.hostile_faults),
        })
    }

    /// One line for the exit summary.
    #[must_use]
    pub fn summary(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "connections={} messages={} resets={} dma_maps={} dma_unmaps={} \
             comp_regs_writes={} config_writes={}",
            g(&self.connections),
            g(&self.messages),
            g(&self.resets),
            g(&self.dma_maps),
            g(&self.dma_unmaps),
            g(&self.comp_regs_writes),
            g(&self.config_writes)
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 {
        return Err("odd number of hex digits".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(s.get(i..i + 2).unwrap_or("x"), 16)
                .map_err(|_| format!("bad hex '{s}'"))
        })
        .collect()
}

/// Longest read the control socket serves at once.
const MAX_CONTROL_READ: u64 = 1 << 20;

fn arg(words: &[&str], i: usize, what: &str) -> Result<u64, String> {
    words
        .get(i)
        .ok_or_else(|| format!("missing {what}"))
        .and_then(|w| parse_number(w))
}

fn length(words: &[&str], i: usize) -> Result<usize, String> {
    let n = arg(words, i, "LEN")?;
    if n > MAX_CONTROL_READ {
        return Err(format!("LEN above {MAX_CONTROL_READ}"));
    }
    Ok(n as usize)
}

/// Runs one command line and returns its reply object.
pub fn execute(sim: &Simulator, line: &str) -> Value {
    let words: Vec<&str> = line.split_whitespace().collect();
    let result: Result<Value, String> = match words.first().copied() {
        Some("stats") => Ok(sim.stats.to_json()),
        Some("state") => Ok(sim.device().state_json()),
        Some("help") => Ok(json!({ "commands": [
            "stats", "state", "config-read OFF LEN", "comp-regs-read OFF",
            "mem-read OFF LEN", "mem-write OFF HEX", "irq INDEX [SUBINDEX]", "help"
        ]})),
        Some("config-read") => (|| {
            let off = arg(&words, 1, "OFF")?;
            let mut buf = vec![0u8; length(&words, 2)?];
            sim.device().config_peek(off, &mut buf)?;
            Ok(json!({ "hex": hex(&buf) }))
        })(),
        Some("comp-regs-read") => (|| {
            let off = arg(&words, 1, "OFF")?;
            let v = sim.device().comp_regs_peek(off)?;
            Ok(json!({ "value": v, "hex": format!("{v:#010x}") }))
        })(),
        Some("mem-read") => (|| {
            let off = arg(&words, 1, "OFF")?;
            let mut buf = vec![0u8; length(&words, 2)?];
            sim.device().memory_peek(off, &mut buf)?;
            Ok(json!({ "hex": hex(&buf) }))
        })(),
        Some("mem-write") => (|| {
            let off = arg(&words, 1, "OFF")?;
            let data = unhex(words.get(2).ok_or("missing HEX")?)?;
            sim.device().memory_poke(off, &data)?;
            Ok(json!({}))
        })(),
        Some("irq") => (|| {
            let index = arg(&words, 1, "INDEX")?;
            let sub = if words.len() > 2 {
                arg(&words, 2, "SUBINDEX")?
            } else {
                0
            };
            sim.device().fire_irq(index, sub)?;
            Ok(json!({}))
        })(),
        Some(other) => Err(format!("unknown command '{other}'")),
        None => Err("empty command".into()),
    };
    match result {
        Ok(Value::Object(mut m)) => {
            m.insert("ok".into(), Value::Bool(true));
            Value::Object(m)
        }
        Ok(v) => json!({ "ok": true, "value": v }),
        Err(e) => json!({ "ok": false, "error": e }),
    }
}

fn serve_one(sim: &Simulator, stream: UnixStream) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        let reply = execute(sim, &line);
        if writeln!(out, "{reply}").is_err() {
            return;
        }
    }
}

/// Serves the control socket forever (each client in its own thread).
pub fn spawn(listener: UnixListener, sim: Arc<Simulator>) {
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let sim = Arc::clone(&sim);
            thread::spawn(move || serve_one(&sim, stream));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(unhex("00ab10").unwrap(), vec![0, 0xab, 0x10]);
        unhex("abc").unwrap_err();
        unhex("zz").unwrap_err();
    }
}
