//! Why a call failed, as a word both sides know. The agent puts it in a failed status's
//! `x-berth-reason` metadata; the console picks its hint by it, never by the message's text
//! (which is for people, and worded by whoever failed).

/// The status metadata key that carries a [`Reason`].
pub const REASON_METADATA: &str = "x-berth-reason";

/// What failed, where the gRPC code alone does not say enough to give the right hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The node's Docker engine does not answer.
    DockerUnavailable,
    /// The registry's name does not resolve from the node.
    RegistryResolve,
    /// The registry resolves but does not accept a connection (refused, timed out).
    RegistryConnect,
    /// The registry's TLS failed (an unknown CA, or a plain-HTTP registry).
    RegistryTls,
    /// The registry wants credentials, or refused them.
    RegistryAuth,
    /// The pull failed some other way.
    RegistryOther,
    /// The registry answered: no such repository, tag or manifest.
    ImageNotFound,
    /// Every node that could run it is short of CPU or memory.
    NoRoom,
    /// No node meets the placement rules (constraints, --node, a volume's node), or the
    /// reasons are mixed.
    NoMatch,
    /// A container name is taken.
    NameInUse,
}

impl Reason {
    const ALL: [Reason; 10] = [
        Reason::DockerUnavailable,
        Reason::RegistryResolve,
        Reason::RegistryConnect,
        Reason::RegistryTls,
        Reason::RegistryAuth,
        Reason::RegistryOther,
        Reason::ImageNotFound,
        Reason::NoRoom,
        Reason::NoMatch,
        Reason::NameInUse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::DockerUnavailable => "docker-unavailable",
            Reason::RegistryResolve => "registry-resolve",
            Reason::RegistryConnect => "registry-connect",
            Reason::RegistryTls => "registry-tls",
            Reason::RegistryAuth => "registry-auth",
            Reason::RegistryOther => "registry-other",
            Reason::ImageNotFound => "image-not-found",
            Reason::NoRoom => "no-room",
            Reason::NoMatch => "no-match",
            Reason::NameInUse => "name-in-use",
        }
    }

    /// The reason a word names; an unknown word (a newer agent's) is none.
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == word)
    }

    /// Puts the reason in a status's metadata.
    pub fn attach(self, status: &mut tonic::Status) {
        status.metadata_mut().insert(
            REASON_METADATA,
            tonic::metadata::MetadataValue::from_static(self.as_str()),
        );
    }

    /// The reason a status carries, if any.
    pub fn of(status: &tonic::Status) -> Option<Self> {
        status
            .metadata()
            .get(REASON_METADATA)
            .and_then(|v| v.to_str().ok())
            .and_then(Self::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_round_trips_through_a_status() {
        for r in Reason::ALL {
            let mut s = tonic::Status::unavailable("x");
            r.attach(&mut s);
            assert_eq!(Reason::of(&s), Some(r));
        }
        let mut s = tonic::Status::unavailable("x");
        s.metadata_mut().insert(
            REASON_METADATA,
            tonic::metadata::MetadataValue::from_static("from-the-future"),
        );
        assert_eq!(Reason::of(&s), None);
    }
}
