//! `troll zone`: the deployment's reverse zones as zone files, for
//! operators whose reverse zone is served by BIND, NSD or Knot.

use crate::cli::{Context, ZoneArgs};
use crate::dns::{render_zone_file, ZoneData};
use crate::error::{Error, Result};

pub fn run(ctx: &Context, args: &ZoneArgs) -> Result<()> {
    let state = ctx
        .store
        .load(&ctx.deployment)?
        .ok_or_else(|| Error::NoDeployment(ctx.deployment.clone()))?;
    let zone = ZoneData::from_state(&state, args.ttl, args.nameserver.as_deref())?;
    let files = render_zone_file(&zone);
    match &args.output {
        None => {
            for (_, text) in &files {
                print!("{text}");
            }
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
            for (origin, text) in &files {
                let path = dir.join(format!("{origin}zone"));
                std::fs::write(&path, text).map_err(|e| Error::io("cannot write", &path, e))?;
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}
