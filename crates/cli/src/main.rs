//! `web4fed`: the node daemon and command-line tool.

mod commands;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// A trust-aware federation of machines: signed feeds, nine defence layers, one state root.
#[derive(Debug, Parser)]
#[command(name = "web4fed", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a node: identity key (mode 0600), proof of work, registration, node.toml.
    Init {
        /// The node directory to create.
        #[arg(long)]
        dir: PathBuf,
        /// The member's display name.
        #[arg(long)]
        name: String,
        /// PoW difficulty in leading zero bits for the default genesis (ignored with --genesis).
        #[arg(long, default_value_t = 22)]
        pow_bits: u8,
        /// A genesis file handed out by the federation (from `web4fed genesis`).
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// The entity type in the LCT id (`[a-z0-9_-]`).
        #[arg(long, default_value = "ai")]
        entity_type: String,
    },
    /// Write a genesis file (the network's parameters) to hand to every member.
    Genesis {
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
        /// PoW difficulty in leading zero bits.
        #[arg(long, default_value_t = 22)]
        pow_bits: u8,
        /// A name for the network (part of the network id).
        #[arg(long)]
        network_name: Option<String>,
    },
    /// Show a node's identity, feed length and state root, verifying its whole log.
    Inspect {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Init {
            dir,
            name,
            pow_bits,
            genesis,
            entity_type,
        } => commands::init(&dir, &name, pow_bits, genesis.as_deref(), &entity_type),
        Command::Genesis {
            out,
            pow_bits,
            network_name,
        } => commands::genesis(&out, pow_bits, network_name),
        Command::Inspect { dir, json } => commands::inspect(&dir, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
