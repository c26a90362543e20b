//! The app file's `ports`: each a mapping (`port`, `protocol`, `name`), a plain integer
//! (Solum's v1 form), or text as Dockerfile `EXPOSE` writes it (`"8080"`, `"53/udp"`). A
//! port and protocol may be listed once.

use super::app::{opt_string, Port, Protocol};
use super::yaml::{self, Decoder, Node};
use super::Problem;

const PORT_KEYS: &[&str] = &["port", "protocol", "name"];
const PROTOCOLS: &[&str] = &["tcp", "udp", "sctp"];

/// A port written without a mapping: `8080`, or as text `"8080"` or `"8080/udp"` (the
/// spelling of Dockerfile `EXPOSE` and compose files).
fn plain_port(d: &mut Decoder<'_>, item: &Node<'_>, field: &str) -> Option<Port> {
    let text = d.string(item, field)?;
    let (number, protocol) = match text.split_once('/') {
        Some((number, protocol)) => (number, Some(protocol)),
        None => (text.as_str(), None),
    };
    let pattern = "PORT or \"PORT/PROTOCOL\" (tcp, udp, sctp)";
    let Ok(number) = number.trim().parse::<i64>() else {
        let value = text.clone();
        d.error(item, field, Problem::Pattern { value, pattern });
        return None;
    };
    if !(1..=65535).contains(&number) {
        let problem = Problem::OutOfRange {
            value: number,
            min: 1,
            max: 65535,
        };
        d.error(item, field, problem);
        return None;
    }
    let protocol = match protocol.map(str::trim) {
        None | Some("tcp") => Protocol::Tcp,
        Some("udp") => Protocol::Udp,
        Some("sctp") => Protocol::Sctp,
        Some(_) => {
            let value = text.clone();
            d.error(
                item,
                field,
                Problem::NotOneOf {
                    value,
                    allowed: PROTOCOLS,
                },
            );
            return None;
        }
    };
    Some(Port {
        port: u16::try_from(number).expect("checked to be in 1..=65535"),
        protocol,
        name: None,
    })
}

pub(super) fn ports(d: &mut Decoder<'_>, n: &Node<'_>) -> Vec<Port> {
    let mut out: Vec<Port> = Vec::new();
    for (i, item) in d
        .sequence(n, "ports")
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let field = format!("ports[{i}]");
        let port = if yaml::is_mapping(item) {
            let Some(p) = d.mapping(item, &field, PORT_KEYS) else {
                continue;
            };
            let number = if let Some(n) = p.get("port") {
                d.integer_in(n, &p.path_of("port"), 1, 65535)
            } else {
                d.error(item, &p.path_of("port"), Problem::Missing);
                None
            };
            let mut protocol = Some(Protocol::Tcp);
            if let Some(n) = p.get("protocol") {
                protocol = d
                    .string(n, &p.path_of("protocol"))
                    .and_then(|v| match v.as_str() {
                        "tcp" => Some(Protocol::Tcp),
                        "udp" => Some(Protocol::Udp),
                        "sctp" => Some(Protocol::Sctp),
                        _ => {
                            let problem = Problem::NotOneOf {
                                value: v,
                                allowed: PROTOCOLS,
                            };
                            d.error(n, &p.path_of("protocol"), problem);
                            None
                        }
                    });
            }
            let name = opt_string(d, &p, "name");
            match (number, protocol) {
                (Some(number), Some(protocol)) => Port {
                    port: number as u16,
                    protocol,
                    name,
                },
                _ => continue,
            }
        } else {
            let Some(port) = plain_port(d, item, &field) else {
                continue;
            };
            port
        };
        if out
            .iter()
            .any(|p| p.port == port.port && p.protocol == port.protocol)
        {
            let value = format!("{}/{}", port.port, port.protocol.as_str());
            d.error(item, &field, Problem::Duplicate { value });
            continue;
        }
        out.push(port);
    }
    out
}
