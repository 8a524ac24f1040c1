//! troll: make traceroute to a server print a message, one line per hop.
//!
//! The binary (`src/main.rs`) only parses arguments and dispatches; all
//! behaviour lives in these modules so that integration tests can reach it.
//! Data flows as DESIGN.md §4 draws it: `message` turns text into host
//! names, `plan` turns names (and addresses) into a hop table, `state`
//! keeps a deployment on disk, `rules` keeps the kernel quiet, `responder`
//! answers probes, `dns` serves the PTR names, `lab` builds network
//! namespaces for `troll demo` and the tests.

pub mod check;
pub mod cli;
pub mod cloud;
pub mod commands;
pub mod config;
pub mod dns;
pub mod error;
pub mod hostaddr;
pub mod lab;
pub mod message;
pub mod plan;
pub mod privileges;
pub mod process;
pub mod resolve;
pub mod responder;
pub mod rules;
pub mod state;
pub mod template;

pub use error::{Error, Result};
