//! Published ports of the user-mode network ([`crate::Network::UserMode`]): a
//! [`PortMapping`] says which host address and port forward to which port of the sandbox, and
//! over which protocol. It is parsed from the command line's `[IP:]HOST:CONTAINER[/tcp|/udp]`
//! form and written back in the same form. The host address defaults to `127.0.0.1`, so a
//! published port is reachable from this machine only unless an address is given. This
//! module is data and parsing; it opens no socket.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// The transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = PortError;

    fn from_str(text: &str) -> Result<Protocol, PortError> {
        match text {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            _ => Err(PortError::Protocol(text.to_string())),
        }
    }
}

/// The host address of a mapping written without one: this machine only.
pub const DEFAULT_HOST_IP: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// One published port: connections to `host_ip:host_port` on the host reach
/// `container_port` of the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_port: u16,
    #[serde(default)]
    pub protocol: Protocol,
}

impl PortMapping {
    /// Whether both cannot be bound on the host at once: the same port and protocol, on
    /// the same address or with either on every address (`0.0.0.0`).
    pub fn collides_with(&self, other: &PortMapping) -> bool {
        self.host_port == other.host_port
            && self.protocol == other.protocol
            && (self.host_ip == other.host_ip
                || self.host_ip.is_unspecified()
                || other.host_ip.is_unspecified())
    }
}

/// The form `-p` expects, for error messages.
pub const PUBLISH_FORM: &str = "[IP:]HOST:CONTAINER[/tcp|/udp]";

impl FromStr for PortMapping {
    type Err = PortError;

    /// `8080:80`, `8080:80/udp`, `0.0.0.0:8080:80/tcp`.
    fn from_str(text: &str) -> Result<PortMapping, PortError> {
        let form = || PortError::Form(text.to_string());
        let (ports, protocol) = match text.split_once('/') {
            Some((ports, protocol)) => (ports, protocol.parse()?),
            None => (text, Protocol::Tcp),
        };
        let parts: Vec<&str> = ports.split(':').collect();
        let (host_ip, host_port, container_port) = match parts[..] {
            [host, container] => (DEFAULT_HOST_IP, host, container),
            [ip, host, container] => {
                let ip = ip
                    .parse::<Ipv4Addr>()
                    .map_err(|_| PortError::Address(ip.to_string()))?;
                (ip, host, container)
            }
            _ => return Err(form()),
        };
        Ok(PortMapping {
            host_ip,
            host_port: parse_port(host_port, "host")?,
            container_port: parse_port(container_port, "container")?,
            protocol,
        })
    }
}

/// A port number from 1 to 65535, digits only (no sign, no spaces).
fn parse_port(text: &str, side: &'static str) -> Result<u16, PortError> {
    let port = text
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| text.parse::<u16>().ok())
        .flatten()
        .filter(|&p| p != 0);
    port.ok_or_else(|| PortError::Port {
        side,
        text: text.to_string(),
    })
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}/{}",
            self.host_ip, self.host_port, self.container_port, self.protocol
        )
    }
}

/// A published port that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("{0:?} is not of the form {PUBLISH_FORM} (e.g. 8080:80, 127.0.0.1:5353:53/udp)")]
    Form(String),
    #[error("{side} port {text:?} is not a number from 1 to 65535 (expected {PUBLISH_FORM})")]
    Port { side: &'static str, text: String },
    #[error("host address {0:?} is not an IPv4 address (expected {PUBLISH_FORM})")]
    Address(String),
    #[error("protocol {0:?} is neither tcp nor udp (expected {PUBLISH_FORM})")]
    Protocol(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(ip: [u8; 4], host: u16, container: u16, protocol: Protocol) -> PortMapping {
        PortMapping {
            host_ip: Ipv4Addr::from(ip),
            host_port: host,
            container_port: container,
            protocol,
        }
    }

    #[test]
    fn the_three_forms_parse_with_loopback_and_tcp_by_default() {
        assert_eq!(
            "8080:80".parse(),
            Ok(mapping([127, 0, 0, 1], 8080, 80, Protocol::Tcp))
        );
        assert_eq!(
            "5353:53/udp".parse(),
            Ok(mapping([127, 0, 0, 1], 5353, 53, Protocol::Udp))
        );
        assert_eq!(
            "0.0.0.0:8080:8080/tcp".parse(),
            Ok(mapping([0, 0, 0, 0], 8080, 8080, Protocol::Tcp))
        );
        let m: PortMapping = "10.1.2.3:1:65535/udp".parse().unwrap();
        assert_eq!(m.to_string(), "10.1.2.3:1:65535/udp");
        assert_eq!(m.to_string().parse(), Ok(m));
    }

    #[test]
    fn malformed_mappings_say_what_is_wrong() {
        let err = |text: &str| text.parse::<PortMapping>().unwrap_err();
        for text in ["8080", "", "1:2:3:4", "a:b:c:d/tcp", "::80"] {
            assert!(
                matches!(err(text), PortError::Form(_) | PortError::Address(_)),
                "{text}: {:?}",
                err(text)
            );
        }
        assert_eq!(
            err("0:80"),
            PortError::Port {
                side: "host",
                text: "0".into()
            }
        );
        for text in ["8080:65536", "8080:-1", "8080:+80", "8080: 80", "8080:"] {
            assert!(
                matches!(
                    err(text),
                    PortError::Port {
                        side: "container",
                        ..
                    }
                ),
                "{text}"
            );
        }
        assert_eq!(
            err("localhost:80:80"),
            PortError::Address("localhost".into())
        );
        assert_eq!(err("::1:80:80"), PortError::Form("::1:80:80".into()));
        assert_eq!(err("80:80/sctp"), PortError::Protocol("sctp".into()));
        assert_eq!(err("80:80/TCP"), PortError::Protocol("TCP".into()));
        assert!(err("80").to_string().contains(PUBLISH_FORM));
    }

    #[test]
    fn collisions_are_per_port_protocol_and_address() {
        let local = mapping([127, 0, 0, 1], 8080, 80, Protocol::Tcp);
        assert!(local.collides_with(&mapping([127, 0, 0, 1], 8080, 81, Protocol::Tcp)));
        assert!(local.collides_with(&mapping([0, 0, 0, 0], 8080, 80, Protocol::Tcp)));
        assert!(!local.collides_with(&mapping([127, 0, 0, 1], 8080, 80, Protocol::Udp)));
        assert!(!local.collides_with(&mapping([127, 0, 0, 2], 8080, 80, Protocol::Tcp)));
        assert!(!local.collides_with(&mapping([127, 0, 0, 1], 8081, 80, Protocol::Tcp)));
    }
}
