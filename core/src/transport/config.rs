//! Settings of the Zenoh transport. Plain data, available without the `zenoh` feature, so a
//! manifest can be checked on any build.

use std::fmt;
use std::path::PathBuf;

/// How a process takes part in a Zenoh network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ZenohMode {
    /// Talks to other peers directly, over the endpoints it listens on and connects to.
    #[default]
    Peer,
    /// Talks only through the router (`zenohd`) or peer it connects to.
    Client,
}

impl ZenohMode {
    /// `peer` or `client`, as written in manifests and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ZenohMode::Peer => "peer",
            ZenohMode::Client => "client",
        }
    }

    /// The mode of that name.
    pub fn from_name(name: &str) -> Option<ZenohMode> {
        match name {
            "peer" => Some(ZenohMode::Peer),
            "client" => Some(ZenohMode::Client),
            _ => None,
        }
    }
}

impl fmt::Display for ZenohMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether the agents of a process prove who sent what (see the `auth` part of
/// [`crate::transport`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Security {
    /// Nothing is proven: names are claims. Anyone may call services (clients in any
    /// language, without keys); adverts, loads and replies are believed within the agents'
    /// checks; code is never installed from another process.
    #[default]
    Open,
    /// Every message carries a tag made with its sender's key, and nothing without a valid
    /// one is accepted. Keys live in `keys`: each local agent's `<name>.key` (made on first
    /// run) and the `<name>.pub` of every agent it should believe.
    Secure {
        /// The key directory.
        keys: PathBuf,
    },
}

impl Security {
    /// `open` or `secure`.
    pub fn name(&self) -> &'static str {
        match self {
            Security::Open => "open",
            Security::Secure { .. } => "secure",
        }
    }
}

/// Where and how a process joins a Zenoh network.
///
/// Every key selflet uses lies under `selflet/<namespace>/`, so several systems share one
/// Zenoh network without seeing each other. Multicast scouting is off unless asked for:
/// explicit endpoints work on every network, and loopback tests find nobody by surprise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZenohConfig {
    /// Peer or client.
    pub mode: ZenohMode,
    /// Endpoints to listen on, such as `tcp/0.0.0.0:7447`.
    pub listen: Vec<String>,
    /// Endpoints to connect to, such as `tcp/192.168.1.10:7447`.
    pub connect: Vec<String>,
    /// The key space's namespace.
    pub namespace: String,
    /// Whether to find peers by UDP multicast as well.
    pub multicast_scouting: bool,
    /// Larger incoming messages are rejected (and counted) unread.
    pub max_message_bytes: usize,
    /// Whether messages prove their sender.
    pub security: Security,
}

/// The namespace when none is given.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The largest message accepted when no limit is given: 1 MiB, far above any teaching package.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;

impl Default for ZenohConfig {
    fn default() -> Self {
        ZenohConfig {
            mode: ZenohMode::Peer,
            listen: Vec::new(),
            connect: Vec::new(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            multicast_scouting: false,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            security: Security::Open,
        }
    }
}

/// A Zenoh setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not written as an endpoint.
    #[error("`{0}` is not an endpoint: write `tcp/<host>:<port>`")]
    NotAnEndpoint(String),
    /// A protocol this build does not carry.
    #[error("endpoint protocol `{0}` is not supported: this build carries `tcp` only")]
    Protocol(String),
    /// An endpoint without a host or a port.
    #[error("`{0}` needs a host and a port, as in `tcp/127.0.0.1:7447`")]
    HostAndPort(String),
    /// A namespace that is not a name.
    #[error("invalid namespace `{0}`: {rule}", rule = crate::name::NAME_RULE)]
    Namespace(String),
    /// A largest message size of 0.
    #[error("the largest message size must be above 0")]
    ZeroMessageSize,
    /// A client with nowhere to connect.
    #[error("a client needs an endpoint to connect to")]
    ClientWithoutEndpoint,
    /// Zenoh itself refused a setting.
    #[error("zenoh refused `{setting}`: {reason}")]
    Zenoh {
        /// The setting.
        setting: String,
        /// What Zenoh said.
        reason: String,
    },
}

impl ZenohConfig {
    /// Checks an endpoint such as `tcp/127.0.0.1:7447`: the protocols this build carries are
    /// `tcp` only, and the address needs a port.
    pub fn check_endpoint(endpoint: &str) -> Result<(), ConfigError> {
        let Some((protocol, address)) = endpoint.split_once('/') else {
            return Err(ConfigError::NotAnEndpoint(endpoint.to_owned()));
        };
        if protocol != "tcp" {
            return Err(ConfigError::Protocol(protocol.to_owned()));
        }
        let address = address.split('#').next().unwrap_or(address);
        match address.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
            _ => Err(ConfigError::HostAndPort(endpoint.to_owned())),
        }
    }

    /// Checks a namespace: a name (letters, digits, `_`, `-`), so that it is one chunk of a
    /// key expression.
    pub fn check_namespace(namespace: &str) -> Result<(), ConfigError> {
        if crate::name::is_valid_name(namespace) {
            Ok(())
        } else {
            Err(ConfigError::Namespace(namespace.to_owned()))
        }
    }

    /// Checks every field, giving each problem found.
    pub fn check(&self) -> Result<(), Vec<ConfigError>> {
        let mut problems: Vec<ConfigError> = self
            .listen
            .iter()
            .chain(&self.connect)
            .filter_map(|e| ZenohConfig::check_endpoint(e).err())
            .collect();
        if let Err(e) = ZenohConfig::check_namespace(&self.namespace) {
            problems.push(e);
        }
        if self.max_message_bytes == 0 {
            problems.push(ConfigError::ZeroMessageSize);
        }
        if self.mode == ZenohMode::Client && self.connect.is_empty() {
            problems.push(ConfigError::ClientWithoutEndpoint);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked_for_protocol_host_and_port() {
        assert!(ZenohConfig::check_endpoint("tcp/127.0.0.1:7447").is_ok());
        assert!(ZenohConfig::check_endpoint("tcp/[::1]:7447").is_ok());
        assert!(ZenohConfig::check_endpoint("tcp/localhost:7447").is_ok());
        let udp = ZenohConfig::check_endpoint("udp/127.0.0.1:7447").unwrap_err();
        assert_eq!(udp, ConfigError::Protocol("udp".into()));
        assert!(ZenohConfig::check_endpoint("127.0.0.1:7447").is_err());
        assert!(ZenohConfig::check_endpoint("tcp/127.0.0.1").is_err());
        assert!(ZenohConfig::check_endpoint("tcp/:7447").is_err());
    }

    #[test]
    fn a_client_needs_somewhere_to_connect() {
        let c = ZenohConfig {
            mode: ZenohMode::Client,
            ..ZenohConfig::default()
        };
        assert_eq!(
            c.check().unwrap_err(),
            vec![ConfigError::ClientWithoutEndpoint]
        );
    }
}
