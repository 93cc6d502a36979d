//! A name resolver for tests: no DNS leaves the machine.
//!
//! [`Names`] answers scripted names from a list of answers, one per lookup (the last
//! repeats), which is how a test plays DNS rebinding; `localhost` goes to the system
//! resolver; every other name resolves to 127.0.0.1, so a test webhook on
//! `https://example.com/…` registers (with 127.0.0.0/8 allow-listed) and anything sent
//! to it stays on this machine. Every lookup is counted per name.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::Mutex;

use hookline::dispatch::ssrf::{Lookup, SystemLookup};

/// Scripted answers, per name.
#[derive(Default)]
pub struct Names {
    scripts: Mutex<HashMap<String, Vec<Vec<IpAddr>>>>,
    lookups: Mutex<HashMap<String, usize>>,
}

impl Names {
    /// Answers `name` with `answers[0]` on the first lookup, `answers[1]` on the second,
    /// …, repeating the last.
    pub fn script(self, name: &str, answers: &[&[&str]]) -> Names {
        let answers = answers
            .iter()
            .map(|a| a.iter().map(|ip| ip.parse().expect("ip")).collect())
            .collect();
        self.scripts
            .lock()
            .expect("lock")
            .insert(name.to_owned(), answers);
        self
    }

    /// How many times `name` was looked up.
    pub fn lookups(&self, name: &str) -> usize {
        self.lookups
            .lock()
            .expect("lock")
            .get(name)
            .copied()
            .unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl Lookup for Names {
    async fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        *self
            .lookups
            .lock()
            .expect("lock")
            .entry(host.to_owned())
            .or_default() += 1;
        if let Some(answers) = self.scripts.lock().expect("lock").get_mut(host) {
            return Ok(if answers.len() > 1 {
                answers.remove(0)
            } else {
                answers.first().cloned().unwrap_or_default()
            });
        }
        if host == "localhost" {
            return SystemLookup.lookup(host).await;
        }
        Ok(vec![IpAddr::from([127, 0, 0, 1])])
    }
}
