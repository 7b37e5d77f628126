//! Published ports as Docker writes them: `[ip:][host_port:]container_port[/tcp|udp]`.

use crate::ValidationError;
use crate::error::quoted;
use std::fmt;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The word Docker and the wire use: `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    fn parse(field: &str, s: &str) -> Result<Self, ValidationError> {
        match s {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            other => Err(ValidationError::new(
                field,
                format!("protocol must be tcp or udp, not {}", quoted(other)),
            )),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortSpec {
    pub host_ip: Option<IpAddr>,
    /// `None`: Docker picks a free port (`-p 80`).
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortSpec {
    /// Parses `-p`: `8080:80`, `80`, `127.0.0.1:8080:80/tcp`, `127.0.0.1::80`, `[::1]:8080:80/udp`.
    /// Ports are 1–65535. Field name: `port`.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let err = |m: String| ValidationError::new("port", m);
        if s.is_empty() {
            return Err(err(
                "empty: expected [ip:][host_port:]container_port[/tcp|udp]".into(),
            ));
        }
        // As Docker: `80/` means tcp.
        let (rest, protocol) = match s.rsplit_once('/') {
            Some((rest, "")) => (rest, Protocol::Tcp),
            Some((rest, p)) => (rest, Protocol::parse("port", p)?),
            None => (s, Protocol::Tcp),
        };
        let (ip, host, container) = if let Some(bracketed) = rest.strip_prefix('[') {
            let Some((ip, after)) = bracketed.split_once(']') else {
                return Err(err(format!(
                    "{}: missing ']' after the IPv6 address",
                    quoted(s)
                )));
            };
            let Some((host, container)) = after.strip_prefix(':').and_then(|a| a.split_once(':'))
            else {
                return Err(err(format!(
                    "{}: expected [ipv6]:host_port:container_port",
                    quoted(s)
                )));
            };
            (ip, host, container)
        } else {
            // Docker's splitParts: more than three parts means an unbracketed IPv6 address.
            let parts: Vec<&str> = rest.split(':').collect();
            match parts.as_slice() {
                [c] => ("", "", *c),
                [h, c] => ("", *h, *c),
                [ip, h, c] => (*ip, *h, *c),
                [.., h, c] => (&rest[..rest.len() - h.len() - c.len() - 2], *h, *c),
                [] => ("", "", ""),
            }
        };
        let host_ip = if ip.is_empty() {
            None
        } else {
            Some(
                ip.parse::<IpAddr>()
                    .map_err(|_| err(format!("host IP {} is not an IP address", quoted(ip))))?,
            )
        };
        let host_port = if host.is_empty() {
            None
        } else {
            Some(parse_port("port", "host port", host)?)
        };
        if container.is_empty() {
            return Err(err(format!("{}: container port is missing", quoted(s))));
        }
        let container_port = parse_port("port", "container port", container)?;
        Ok(Self {
            host_ip,
            host_port,
            container_port,
            protocol,
        })
    }
}

impl fmt::Display for PortSpec {
    /// Docker's `docker ps` form: `127.0.0.1:8080->80/tcp`, `0.0.0.0:8080->80/tcp`, `80/tcp` when unpublished.
    /// With an address but no host port yet (`-p 127.0.0.1::80` before Docker picks one), the
    /// port is left out: `127.0.0.1->80/tcp`. IPv6 addresses are bracketed: `[::1]:8080->80/udp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, p) = (self.container_port, self.protocol);
        let ip = match self.host_ip {
            Some(IpAddr::V6(v6)) => format!("[{v6}]"),
            Some(IpAddr::V4(v4)) => v4.to_string(),
            None => "0.0.0.0".to_owned(),
        };
        match (self.host_ip, self.host_port) {
            (_, Some(h)) => write!(f, "{ip}:{h}->{c}/{p}"),
            (Some(_), None) => write!(f, "{ip}->{c}/{p}"),
            (None, None) => write!(f, "{c}/{p}"),
        }
    }
}

impl From<&PortSpec> for berth_proto::v1::PortMapping {
    fn from(p: &PortSpec) -> Self {
        Self {
            host_ip: p.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            host_port: p.host_port.map(u32::from).unwrap_or(0),
            container_port: u32::from(p.container_port),
            protocol: p.protocol.as_str().to_owned(),
        }
    }
}

impl TryFrom<&berth_proto::v1::PortMapping> for PortSpec {
    type Error = ValidationError;
    /// An empty protocol (the proto3 default) means tcp, as Docker's default.
    fn try_from(p: &berth_proto::v1::PortMapping) -> Result<Self, ValidationError> {
        let err = |m: String| ValidationError::new("ports", m);
        let host_ip = if p.host_ip.is_empty() {
            None
        } else {
            Some(p.host_ip.parse::<IpAddr>().map_err(|_| {
                err(format!(
                    "host IP {} is not an IP address",
                    quoted(&p.host_ip)
                ))
            })?)
        };
        let host_port = match p.host_port {
            0 => None,
            h => Some(port_in_range("ports", "host port", h)?),
        };
        let container_port = port_in_range("ports", "container port", p.container_port)?;
        let protocol = match p.protocol.as_str() {
            "" => Protocol::Tcp,
            other => Protocol::parse("ports", other)?,
        };
        Ok(Self {
            host_ip,
            host_port,
            container_port,
            protocol,
        })
    }
}

fn parse_port(field: &str, which: &str, s: &str) -> Result<u16, ValidationError> {
    if s.contains('-')
        && s.split('-')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(ValidationError::new(
            field,
            format!("{which} {}: port ranges are not supported", quoted(s)),
        ));
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValidationError::new(
            field,
            format!("{which} {} is not a number", quoted(s)),
        ));
    }
    // All digits: a parse failure can only be overflow, which is out of range too.
    let n = s.parse::<u32>().unwrap_or(u32::MAX);
    port_in_range(field, which, n).map_err(|_| {
        ValidationError::new(
            field,
            format!("{which} {} is out of range 1-65535", quoted(s)),
        )
    })
}

fn port_in_range(field: &str, which: &str, n: u32) -> Result<u16, ValidationError> {
    match u16::try_from(n) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(ValidationError::new(
            field,
            format!("{which} {n} is out of range 1-65535"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_proto::v1::PortMapping;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ok(s: &str) -> PortSpec {
        PortSpec::parse(s).unwrap_or_else(|e| panic!("{s:?} refused: {e}"))
    }

    fn refused(s: &str) -> String {
        match PortSpec::parse(s) {
            Ok(p) => panic!("{s:?} accepted as {p:?}"),
            Err(e) => {
                assert_eq!(e.field, "port", "{e}");
                e.message
            }
        }
    }

    fn spec(ip: Option<IpAddr>, host: Option<u16>, c: u16, p: Protocol) -> PortSpec {
        PortSpec {
            host_ip: ip,
            host_port: host,
            container_port: c,
            protocol: p,
        }
    }

    const LOCAL4: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    const LOCAL6: Option<IpAddr> = Some(IpAddr::V6(Ipv6Addr::LOCALHOST));

    #[test]
    fn accepts_docker_forms() {
        assert_eq!(ok("8080:80"), spec(None, Some(8080), 80, Protocol::Tcp));
        assert_eq!(ok("80"), spec(None, None, 80, Protocol::Tcp));
        assert_eq!(ok("53/udp"), spec(None, None, 53, Protocol::Udp));
        assert_eq!(ok("80/"), spec(None, None, 80, Protocol::Tcp));
        assert_eq!(
            ok("127.0.0.1:8080:80/tcp"),
            spec(LOCAL4, Some(8080), 80, Protocol::Tcp)
        );
        assert_eq!(ok("127.0.0.1::80"), spec(LOCAL4, None, 80, Protocol::Tcp));
        assert_eq!(
            ok("[::1]:8080:80/udp"),
            spec(LOCAL6, Some(8080), 80, Protocol::Udp)
        );
        assert_eq!(ok("[::1]::80"), spec(LOCAL6, None, 80, Protocol::Tcp));
        // Docker's unbracketed IPv6 form.
        assert_eq!(
            ok("::1:8080:80"),
            spec(LOCAL6, Some(8080), 80, Protocol::Tcp)
        );
        assert_eq!(ok("65535:1"), spec(None, Some(65535), 1, Protocol::Tcp));
    }

    #[test]
    fn refuses_out_of_range_ports_naming_which() {
        let m = refused("99999:80");
        assert_eq!(m, "host port \"99999\" is out of range 1-65535");
        let m = refused("80:99999");
        assert_eq!(m, "container port \"99999\" is out of range 1-65535");
        let m = refused("0:80");
        assert!(m.starts_with("host port \"0\" is out of range"), "{m}");
        assert!(refused("0").starts_with("container port \"0\" is out of range"));
        let m = refused(&format!("{}:80", "9".repeat(1000)));
        assert!(m.contains("out of range") && m.len() < 150, "{m}");
    }

    #[test]
    fn refuses_bad_protocol() {
        assert_eq!(
            refused("80:80/xyz"),
            "protocol must be tcp or udp, not \"xyz\""
        );
        assert!(refused("80/sctp").contains("protocol must be tcp or udp"));
    }

    #[test]
    fn refuses_garbage() {
        assert!(refused("").starts_with("empty"));
        assert!(refused("http").contains("container port \"http\" is not a number"));
        assert!(refused("8080:").contains("container port is missing"));
        assert!(refused("8080-8090:80").contains("port ranges are not supported"));
        assert!(refused("localhost:8080:80").contains("host IP \"localhost\" is not an IP"));
        assert!(refused("[::1:8080:80").contains("missing ']'"));
        assert!(refused("[::1]:80").contains("expected [ipv6]:host_port:container_port"));
        assert!(refused("+80").contains("not a number"));
    }

    #[test]
    fn display_is_docker_ps_form() {
        assert_eq!(
            ok("127.0.0.1:8080:80").to_string(),
            "127.0.0.1:8080->80/tcp"
        );
        assert_eq!(ok("8080:80").to_string(), "0.0.0.0:8080->80/tcp");
        assert_eq!(ok("80").to_string(), "80/tcp");
        assert_eq!(ok("[::1]:8080:80/udp").to_string(), "[::1]:8080->80/udp");
        assert_eq!(ok("127.0.0.1::80").to_string(), "127.0.0.1->80/tcp");
    }

    #[test]
    fn proto_round_trip() {
        for s in [
            "8080:80",
            "80",
            "127.0.0.1:8080:80/tcp",
            "127.0.0.1::80",
            "[::1]:8080:80/udp",
        ] {
            let p = ok(s);
            let wire = PortMapping::from(&p);
            assert_eq!(PortSpec::try_from(&wire), Ok(p), "{s}");
        }
        let wire = PortMapping::from(&ok("[::1]:8080:53/udp"));
        assert_eq!(wire.host_ip, "::1");
        assert_eq!(wire.host_port, 8080);
        assert_eq!(wire.container_port, 53);
        assert_eq!(wire.protocol, "udp");
        let wire = PortMapping::from(&ok("80"));
        assert_eq!((wire.host_ip.as_str(), wire.host_port), ("", 0));
    }

    #[test]
    fn proto_refuses_bad_wire_values() {
        let good = PortMapping {
            host_ip: String::new(),
            host_port: 0,
            container_port: 80,
            protocol: String::new(),
        };
        assert_eq!(
            PortSpec::try_from(&good),
            Ok(spec(None, None, 80, Protocol::Tcp))
        );
        let cases = [
            (
                PortMapping {
                    protocol: "sctp".into(),
                    ..good.clone()
                },
                "protocol must be tcp or udp",
            ),
            (
                PortMapping {
                    host_port: 70000,
                    ..good.clone()
                },
                "host port 70000 is out of range",
            ),
            (
                PortMapping {
                    container_port: 0,
                    ..good.clone()
                },
                "container port 0 is out of range",
            ),
            (
                PortMapping {
                    container_port: 65536,
                    ..good.clone()
                },
                "container port 65536 is out",
            ),
            (
                PortMapping {
                    host_ip: "nope".into(),
                    ..good.clone()
                },
                "host IP \"nope\"",
            ),
        ];
        for (wire, want) in cases {
            let e = PortSpec::try_from(&wire).expect_err("refused");
            assert_eq!(e.field, "ports");
            assert!(e.message.contains(want), "{e} / {want}");
        }
    }
}
