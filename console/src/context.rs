//! Contexts: named agents (an address and, for a cluster with a secret, a token file) kept in
//! the console's config file, as `docker context` and kubectl's contexts keep theirs, and the
//! one rule that picks the agent and the token a command uses.
//!
//! Each setting comes from the first of: its flag (`--agent`; `--token-file`, `--token`), its
//! environment variable (`BERTH_AGENT`, `BERTH_TOKEN`), the context, the default (127.0.0.1:7070
//! or an embedded agent, no token). The context is `--context`, else `BERTH_CONTEXT`, else the
//! one `berth context use` chose. Two rules keep a token from going where it was not meant to:
//! a context's token file is only ever sent to that context's agent (an agent named by flag or
//! variable means the context is not used at all), and `--context` typed on the command line
//! wins over `BERTH_AGENT` and `BERTH_TOKEN` (those were set for something else).

use berth_shared::defaults::{ENV_AGENT, ENV_TOKEN};
use color_eyre::Section;
use color_eyre::eyre::{Result, WrapErr, eyre};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Picks a context for one command, like `--context`.
pub const ENV_CONTEXT: &str = "BERTH_CONTEXT";
/// The name that means "no context": the flags, the environment and the defaults only.
pub const DEFAULT_CONTEXT: &str = "default";
/// The config file, in `$XDG_CONFIG_HOME/berth` (else `~/.config/berth`).
pub const CONFIG_FILE: &str = "config.toml";
/// Longest context name.
const MAX_NAME: usize = 64;

/// The console's config file.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The context `berth context use` chose; none means `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// One context: where its agent is and how to prove we may talk to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    /// `host:port` of any agent of the cluster.
    pub agent: String,
    /// A file holding the token (read at each command, so a rotated token needs no edit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Where the config file is: `$XDG_CONFIG_HOME/berth/config.toml`, else
/// `~/.config/berth/config.toml` (relative values are ignored, as the XDG spec says).
pub fn config_path(env: &dyn Fn(&str) -> Option<String>) -> Result<PathBuf> {
    let absolute = |name: &str| {
        env(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(xdg) = absolute("XDG_CONFIG_HOME") {
        return Ok(xdg.join("berth").join(CONFIG_FILE));
    }
    if let Some(home) = absolute("HOME") {
        return Ok(home.join(".config/berth").join(CONFIG_FILE));
    }
    Err(eyre!(
        "cannot find berth's config file: neither XDG_CONFIG_HOME nor HOME is set"
    ))
    .suggestion("set HOME, or give --agent (and --token-file) on each command")
}

impl Config {
    /// Reads the file; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(e).wrap_err_with(|| format!("cannot read {}", path.display()));
            }
        };
        let config: Self = toml::from_str(&text)
            .map_err(|e| eyre!("{}: {}", path.display(), e.message().trim()))
            .suggestion("fix the file by hand, or remove it and add the contexts again")?;
        for (name, context) in &config.contexts {
            validate_name(name).wrap_err_with(|| format!("in {}", path.display()))?;
            berth_shared::client::normalize_agent_url(&context.agent)
                .wrap_err_with(|| format!("in {}: context {name}'s agent", path.display()))?;
        }
        Ok(config)
    }

    /// Writes the whole file anew (a temp file renamed over it, so a crash leaves the old one
    /// or the new one), readable by its owner only: it names token files and agents.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = path
            .parent()
            .ok_or_else(|| eyre!("{} has no parent directory", path.display()))?;
        std::fs::create_dir_all(dir)
            .wrap_err_with(|| format!("cannot create {}", dir.display()))?;
        let text = toml::to_string_pretty(self).wrap_err("cannot write the config as TOML")?;
        let tmp = dir.join(format!(".{CONFIG_FILE}.{}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            eyre!("cannot write {}: {e}", path.display())
        })
    }

    /// The named context, or an error listing the ones there are.
    pub fn get(&self, name: &str, path: &Path) -> Result<&Context> {
        self.contexts.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.contexts.keys().map(String::as_str).collect();
            let known = if known.is_empty() {
                "there are none yet".to_owned()
            } else {
                format!("there are: {}", known.join(", "))
            };
            eyre!("no context named {name:?} in {} ({known})", path.display())
                .suggestion("`berth context add NAME --agent HOST:PORT` makes one")
        })
    }
}

/// Docker's rule for context names: a letter or digit, then letters, digits, `_ . + -`.
pub fn validate_name(name: &str) -> Result<()> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    let rest_ok =
        bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'-'));
    if !first_ok || !rest_ok || name.len() > MAX_NAME {
        let shown: String = name.chars().take(MAX_NAME).collect();
        return Err(eyre!(
            "invalid context name {shown:?}: expected a letter or digit, then letters, digits, \
             '_', '.', '+' or '-', at most {MAX_NAME} characters"
        ));
    }
    Ok(())
}

/// What the command line said about where to go, before any file is read.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub agent: Option<String>,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub context: Option<String>,
}

/// Where a command goes, and with which token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    /// None: the default address, else an embedded agent.
    pub agent: Option<String>,
    pub token: Option<String>,
    /// The context used, for messages (`None` for default).
    pub context: Option<String>,
}

/// The one precedence rule (see the module's documentation). `env` reads the environment;
/// the config file is read only when a context is in play.
pub fn resolve(flags: &Flags, env: &dyn Fn(&str) -> Option<String>) -> Result<Target> {
    let env_set = |name: &str| env(name).filter(|v| !v.is_empty());
    let flag_token = || -> Result<Option<String>> {
        if let Some(path) = &flags.token_file {
            return read_token_file(path).map(Some);
        }
        Ok(flags.token.clone().filter(|t| !t.is_empty()))
    };
    let explicit = flags.context.as_deref();
    if let Some(name) = explicit
        && name != DEFAULT_CONTEXT
        && flags.agent.is_some()
    {
        return Err(eyre!(
            "--agent and --context {name} both say which agent to use: give one of them"
        ));
    }
    // An agent named by flag, or by BERTH_AGENT unless --context was typed: no context at all.
    let agent_outside = flags.agent.clone().or_else(|| match explicit {
        Some(_) => None,
        None => env_set(ENV_AGENT),
    });
    if let Some(agent) = agent_outside {
        let token = match flag_token()? {
            Some(t) => Some(t),
            None => env_set(ENV_TOKEN),
        };
        return Ok(Target {
            agent: Some(agent),
            token,
            context: None,
        });
    }
    let path = config_path(env);
    let chosen = match explicit {
        Some(name) => Some(name.to_owned()),
        None => match env_set(ENV_CONTEXT) {
            Some(name) => Some(name),
            // No variable and no flag: the file's choice, if there is a file to read.
            None => match &path {
                Ok(p) => Config::load(p)?.current,
                Err(_) => None,
            },
        },
    };
    let env_token = || {
        if explicit.is_some() {
            None
        } else {
            env_set(ENV_TOKEN)
        }
    };
    let Some(name) = chosen.filter(|n| n != DEFAULT_CONTEXT) else {
        let token = match flag_token()? {
            Some(t) => Some(t),
            None => env_token(),
        };
        return Ok(Target {
            agent: None,
            token,
            context: None,
        });
    };
    validate_name(&name)?;
    let path = path?;
    let config = Config::load(&path)?;
    let context = config.get(&name, &path)?;
    let token = match flag_token()? {
        Some(t) => Some(t),
        None => match env_token() {
            Some(t) => Some(t),
            None => match &context.token_file {
                Some(file) => Some(
                    read_token_file(file)
                        .wrap_err_with(|| format!("the token file of context {name}"))?,
                ),
                None => None,
            },
        },
    };
    Ok(Target {
        agent: Some(context.agent.clone()),
        token,
        context: Some(name),
    })
}

/// A token file's contents without surrounding whitespace; empty is an error.
pub fn read_token_file(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .wrap_err_with(|| format!("cannot read the token file {}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(eyre!("the token file {} is empty", path.display()))
            .suggestion("write the cluster token into it, or use --token");
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct World {
        _dir: tempfile::TempDir,
        home: PathBuf,
        vars: BTreeMap<&'static str, String>,
    }

    impl World {
        fn new() -> Self {
            crate::test_error_hook();
            let dir = tempfile::tempdir().expect("temp dir");
            let home = dir.path().to_owned();
            let mut vars = BTreeMap::new();
            vars.insert("HOME", home.display().to_string());
            Self {
                _dir: dir,
                home,
                vars,
            }
        }
        fn env(&self) -> impl Fn(&str) -> Option<String> + '_ {
            |name| self.vars.get(name).cloned()
        }
        fn path(&self) -> PathBuf {
            config_path(&self.env()).expect("path")
        }
        fn token_file(&self, name: &str, token: &str) -> PathBuf {
            let p = self.home.join(name);
            std::fs::write(&p, format!("{token}\n")).expect("written");
            p
        }
        /// Contexts `prod` (with a token file) and `lab` (without); `prod` in use.
        fn with_contexts(self) -> Self {
            let mut config = Config {
                current: Some("prod".into()),
                ..Config::default()
            };
            config.contexts.insert(
                "prod".into(),
                Context {
                    agent: "10.0.0.5:7070".into(),
                    token_file: Some(self.token_file("prod.token", "prod-token")),
                    description: None,
                },
            );
            config.contexts.insert(
                "lab".into(),
                Context {
                    agent: "lab.local:7070".into(),
                    token_file: None,
                    description: Some("the rack".into()),
                },
            );
            config.save(&self.path()).expect("saved");
            self
        }
        fn resolve(&self, flags: Flags) -> Result<Target> {
            resolve(&flags, &self.env())
        }
    }

    fn target(agent: Option<&str>, token: Option<&str>, context: Option<&str>) -> Target {
        Target {
            agent: agent.map(Into::into),
            token: token.map(Into::into),
            context: context.map(Into::into),
        }
    }

    #[test]
    fn the_config_file_is_under_xdg_config_home_else_home() {
        let mut w = World::new();
        assert_eq!(w.path(), w.home.join(".config/berth/config.toml"));
        w.vars.insert("XDG_CONFIG_HOME", "/x/conf".into());
        assert_eq!(w.path(), PathBuf::from("/x/conf/berth/config.toml"));
        // A relative XDG value is ignored, as the spec says.
        w.vars.insert("XDG_CONFIG_HOME", "conf".into());
        assert_eq!(w.path(), w.home.join(".config/berth/config.toml"));
    }

    #[test]
    fn nothing_set_is_the_default() {
        let w = World::new();
        assert_eq!(w.resolve(Flags::default()).expect("ok"), Target::default());
        // No file is made by reading.
        assert!(!w.path().exists());
    }

    #[test]
    fn the_current_context_gives_agent_and_token() {
        let w = World::new().with_contexts();
        assert_eq!(
            w.resolve(Flags::default()).expect("ok"),
            target(Some("10.0.0.5:7070"), Some("prod-token"), Some("prod"))
        );
    }

    #[test]
    fn precedence_is_flag_then_env_then_context_then_default() {
        let mut w = World::new().with_contexts();
        // env BERTH_CONTEXT beats the file's choice.
        w.vars.insert(ENV_CONTEXT, "lab".into());
        assert_eq!(
            w.resolve(Flags::default()).expect("ok"),
            target(Some("lab.local:7070"), None, Some("lab"))
        );
        // --context beats BERTH_CONTEXT.
        let flags = Flags {
            context: Some("prod".into()),
            ..Flags::default()
        };
        assert_eq!(
            w.resolve(flags).expect("ok").context.as_deref(),
            Some("prod")
        );
        // BERTH_TOKEN beats the context's token file (env > context)...
        w.vars.insert(ENV_TOKEN, "env-token".into());
        assert_eq!(
            w.resolve(Flags::default()).expect("ok").token.as_deref(),
            Some("env-token")
        );
        // ...and --token beats BERTH_TOKEN (flag > env).
        let flags = Flags {
            token: Some("flag-token".into()),
            ..Flags::default()
        };
        assert_eq!(
            w.resolve(flags).expect("ok").token.as_deref(),
            Some("flag-token")
        );
        // BERTH_AGENT beats the context, which is then not used at all: its token is not
        // sent to an address it was not made for.
        w.vars.remove(ENV_TOKEN);
        w.vars.insert(ENV_CONTEXT, "prod".into());
        w.vars.insert(ENV_AGENT, "other:7070".into());
        assert_eq!(
            w.resolve(Flags::default()).expect("ok"),
            target(Some("other:7070"), None, None)
        );
        // --agent beats BERTH_AGENT, and the same holds.
        let flags = Flags {
            agent: Some("flag:7070".into()),
            ..Flags::default()
        };
        assert_eq!(
            w.resolve(flags).expect("ok"),
            target(Some("flag:7070"), None, None)
        );
    }

    #[test]
    fn a_typed_context_wins_over_the_environment() {
        let mut w = World::new().with_contexts();
        w.vars.insert(ENV_AGENT, "other:7070".into());
        w.vars.insert(ENV_TOKEN, "other-token".into());
        let flags = Flags {
            context: Some("prod".into()),
            ..Flags::default()
        };
        assert_eq!(
            w.resolve(flags).expect("ok"),
            target(Some("10.0.0.5:7070"), Some("prod-token"), Some("prod"))
        );
        // `--context default` drops the file's choice, and the environment applies again.
        let flags = Flags {
            context: Some(DEFAULT_CONTEXT.into()),
            ..Flags::default()
        };
        assert_eq!(w.resolve(flags).expect("ok").context, None);
        w.vars.remove(ENV_AGENT);
        let flags = Flags {
            context: Some(DEFAULT_CONTEXT.into()),
            ..Flags::default()
        };
        assert_eq!(w.resolve(flags).expect("ok"), Target::default());
    }

    #[test]
    fn agent_and_context_flags_together_are_refused() {
        let w = World::new().with_contexts();
        let flags = Flags {
            agent: Some("x:1".into()),
            context: Some("prod".into()),
            ..Flags::default()
        };
        let e = w.resolve(flags).expect_err("refused");
        assert!(e.to_string().contains("give one of them"), "{e}");
    }

    #[test]
    fn an_unknown_context_is_named_with_the_known_ones() {
        let mut w = World::new().with_contexts();
        w.vars.insert(ENV_CONTEXT, "stage".into());
        let e = w.resolve(Flags::default()).expect_err("refused");
        let text = e.to_string();
        assert!(text.contains("\"stage\""), "{text}");
        assert!(text.contains("lab, prod"), "{text}");
    }

    #[test]
    fn a_bad_file_is_an_error_naming_it_and_what_is_wrong() {
        let w = World::new();
        let path = w.path();
        std::fs::create_dir_all(path.parent().expect("dir")).expect("dir");
        std::fs::write(&path, "current = \"x\"\n[contexts.x]\nagnet = \"h:1\"\n").expect("w");
        let e = w.resolve(Flags::default()).expect_err("refused");
        let text = format!("{e}");
        assert!(text.contains("config.toml"), "{text}");
        assert!(text.contains("agnet"), "{text}");
        std::fs::write(&path, "[contexts.x]\nagent = \"no-port\"\n").expect("w");
        let e = Config::load(&path).expect_err("refused");
        assert!(format!("{e:#}").contains("missing port"), "{e:#}");
        std::fs::write(&path, "[contexts.\"-x\"]\nagent = \"h:1\"\n").expect("w");
        let e = Config::load(&path).expect_err("refused");
        assert!(format!("{e:#}").contains("invalid context name"), "{e:#}");
    }

    #[test]
    fn a_missing_token_file_names_the_context() {
        let w = World::new().with_contexts();
        std::fs::remove_file(w.home.join("prod.token")).expect("removed");
        let e = w.resolve(Flags::default()).expect_err("refused");
        let text = format!("{e:#}");
        assert!(text.contains("context prod"), "{text}");
        assert!(text.contains("prod.token"), "{text}");
    }

    #[test]
    fn the_file_round_trips_and_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let w = World::new().with_contexts();
        let config = Config::load(&w.path()).expect("loaded");
        assert_eq!(config.current.as_deref(), Some("prod"));
        assert_eq!(config.contexts.len(), 2);
        let mode = std::fs::metadata(w.path())
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn context_names_follow_dockers_rule() {
        for ok in ["prod", "a", "lab-1", "eu.west+2", "x_y", "9"] {
            validate_name(ok).expect(ok);
        }
        for bad in ["", "-x", ".x", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
