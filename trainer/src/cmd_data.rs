use clap::Subcommand;

#[derive(Subcommand)]
pub enum DataCommand {}

pub fn run(c: DataCommand) -> anyhow::Result<()> {
    match c {}
}
