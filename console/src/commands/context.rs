//! `berth context …`: the config file's named agents. No agent is asked: like `docker context`,
//! adding one does not check that its agent answers (the first command against it does).

use super::print;
use crate::cli::{ContextCommand, GlobalArgs, OutputFormat};
use crate::context::{self, Config, Context, DEFAULT_CONTEXT, ENV_CONTEXT};
use crate::output::Table;
use berth_shared::defaults::ENV_AGENT;
use color_eyre::Section;
use color_eyre::eyre::{Result, WrapErr, eyre};

/// Runs one `context` subcommand against the config file.
pub fn run(
    command: &ContextCommand,
    global: &GlobalArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    let path = context::config_path(env)?;
    let output = global.output;
    match command {
        ContextCommand::Add {
            name,
            description,
            use_it,
        } => {
            context::validate_name(name)?;
            if name == DEFAULT_CONTEXT {
                return Err(eyre!("{DEFAULT_CONTEXT:?} is the name for no context"))
                    .suggestion("choose another name");
            }
            let Some(agent) = &global.agent else {
                return Err(eyre!("a context needs its agent: give --agent HOST:PORT"));
            };
            berth_shared::client::normalize_agent_url(agent)
                .map_err(crate::errors::connect_report)?;
            if global.token.is_some() {
                return Err(eyre!("a context keeps a token file, not a token"))
                    .suggestion("write the token to a file (mode 0600) and give --token-file");
            }
            let token_file = match &global.token_file {
                Some(file) => {
                    // Checked now, kept absolute: the context is used from any directory.
                    context::read_token_file(file)?;
                    Some(std::path::absolute(file).wrap_err_with(|| {
                        format!("cannot make {} an absolute path", file.display())
                    })?)
                }
                None => None,
            };
            let mut config = Config::load(&path)?;
            if config.contexts.contains_key(name) {
                return Err(eyre!("there is already a context named {name}"))
                    .suggestion(format!("remove it first with `berth context rm {name}`"));
            }
            config.contexts.insert(
                name.clone(),
                Context {
                    agent: agent.clone(),
                    token_file,
                    description: description.clone(),
                },
            );
            if *use_it {
                config.current = Some(name.clone());
            }
            config.save(&path)?;
            eprintln!(
                "context {name} added{}",
                if *use_it { " and in use" } else { "" }
            );
            Ok(())
        }
        ContextCommand::Ls => {
            let config = Config::load(&path)?;
            let current = in_use(&config, global, env);
            if output == OutputFormat::Json {
                let mut rows = vec![serde_json::json!({
                    "name": DEFAULT_CONTEXT,
                    "current": current.name == DEFAULT_CONTEXT,
                    "agent": null,
                    "token_file": null,
                    "description": "127.0.0.1:7070, else an embedded agent",
                })];
                for (name, c) in &config.contexts {
                    rows.push(serde_json::json!({
                        "name": name,
                        "current": current.name == *name,
                        "agent": c.agent,
                        "token_file": c.token_file,
                        "description": c.description,
                    }));
                }
                let text = serde_json::to_string_pretty(&rows).wrap_err("cannot write JSON")?;
                return print(&format!("{text}\n"));
            }
            let mut table = Table::new(&["NAME", "AGENT", "TOKEN FILE", "DESCRIPTION"]);
            let mark = |name: &str| {
                if current.name == name {
                    format!("{name} *")
                } else {
                    name.to_owned()
                }
            };
            table.row(vec![
                mark(DEFAULT_CONTEXT),
                "127.0.0.1:7070 or embedded".into(),
                String::new(),
                String::new(),
            ]);
            for (name, c) in &config.contexts {
                table.row(vec![
                    mark(name),
                    c.agent.clone(),
                    c.token_file
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    c.description.clone().unwrap_or_default(),
                ]);
            }
            print(&table.render())
        }
        ContextCommand::Use { name } => {
            let mut config = Config::load(&path)?;
            if name == DEFAULT_CONTEXT {
                config.current = None;
            } else {
                context::validate_name(name)?;
                config.get(name, &path)?;
                config.current = Some(name.clone());
            }
            config.save(&path)?;
            eprintln!("now using context {name}");
            if let Some(other) = env(ENV_CONTEXT).filter(|v| !v.is_empty() && v != name) {
                eprintln!("note: {ENV_CONTEXT}={other} is set, and wins in this shell");
            }
            Ok(())
        }
        ContextCommand::Rm { names, force } => {
            let mut config = Config::load(&path)?;
            for name in names {
                config.get(name, &path)?;
                if config.current.as_deref() == Some(name.as_str()) && !force {
                    return Err(eyre!("context {name} is in use; nothing was removed"))
                        .suggestion("`berth context use default` first, or give --force");
                }
            }
            for name in names {
                config.contexts.remove(name);
                if config.current.as_deref() == Some(name.as_str()) {
                    config.current = None;
                }
            }
            config.save(&path)?;
            eprintln!("removed {}", names.join(", "));
            Ok(())
        }
        ContextCommand::Show => {
            let config = Config::load(&path)?;
            let current = in_use(&config, global, env);
            if output == OutputFormat::Json {
                let text = serde_json::to_string_pretty(&serde_json::json!({
                    "name": current.name,
                    "from": current.from,
                    "config": path,
                }))
                .wrap_err("cannot write JSON")?;
                return print(&format!("{text}\n"));
            }
            print(&format!("{}\n", current.name))
        }
    }
}

/// The context a command would use now, and what chose it.
struct InUse {
    name: String,
    from: &'static str,
}

fn in_use(config: &Config, global: &GlobalArgs, env: &dyn Fn(&str) -> Option<String>) -> InUse {
    // An agent named outside any context means none is used (as DOCKER_HOST does).
    if global.agent.is_some() {
        return InUse {
            name: DEFAULT_CONTEXT.to_owned(),
            from: "--agent",
        };
    }
    if global.context.is_none() && env(ENV_AGENT).is_some_and(|v| !v.is_empty()) {
        return InUse {
            name: DEFAULT_CONTEXT.to_owned(),
            from: ENV_AGENT,
        };
    }
    if let Some(name) = &global.context {
        return InUse {
            name: name.clone(),
            from: "--context",
        };
    }
    if let Some(name) = env(ENV_CONTEXT).filter(|v| !v.is_empty()) {
        return InUse {
            name,
            from: ENV_CONTEXT,
        };
    }
    match &config.current {
        Some(name) => InUse {
            name: name.clone(),
            from: "config",
        },
        None => InUse {
            name: DEFAULT_CONTEXT.to_owned(),
            from: "default",
        },
    }
}
