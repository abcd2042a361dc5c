use clap::Subcommand;

#[derive(Subcommand)]
pub enum LabellerCommand {}

pub fn run(c: LabellerCommand) -> anyhow::Result<()> {
    match c {}
}
