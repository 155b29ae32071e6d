//! The registry of (API key, version range) pairs a server implements.
//!
//! One registry answers three questions: which versions ApiVersions advertises, whether a request
//! may be decoded at all, and (for clients such as the test harness) which version to use. A
//! server builds its registry once, from the versions each handler declares, so that what is
//! advertised and what is dispatched cannot drift apart.

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::VersionRange;

/// One API and the inclusive range of versions implemented for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiSupport {
    /// The API.
    pub key: ApiKey,
    /// Lowest implemented version.
    pub min_version: i16,
    /// Highest implemented version.
    pub max_version: i16,
}

impl ApiSupport {
    /// Declares `min_version..=max_version` of `key`. Evaluated in a `const`, an inverted range is a
    /// compile error.
    pub const fn new(key: ApiKey, min_version: i16, max_version: i16) -> Self {
        assert!(min_version >= 0 && min_version <= max_version);
        Self {
            key,
            min_version,
            max_version,
        }
    }

    /// Whether `version` lies in the implemented range.
    pub fn contains(&self, version: i16) -> bool {
        (self.min_version..=self.max_version).contains(&version)
    }

    /// The implemented range as kafka-protocol's type.
    pub fn range(&self) -> VersionRange {
        VersionRange {
            min: self.min_version,
            max: self.max_version,
        }
    }
}

/// Why a request cannot be served at the version it was sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The API is not implemented at all.
    #[error("API {key:?} is not implemented")]
    UnsupportedApi {
        /// The API.
        key: ApiKey,
    },
    /// The API is implemented, but not at this version.
    #[error("API {key:?} version {version} is outside the implemented range {min}..={max}")]
    UnsupportedVersion {
        /// The API.
        key: ApiKey,
        /// The version the request was sent with.
        version: i16,
        /// Lowest implemented version.
        min: i16,
        /// Highest implemented version.
        max: i16,
    },
}

/// A registry that contradicts itself or the protocol schemas.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The same API is listed twice.
    #[error("API {0:?} is registered twice")]
    Duplicate(ApiKey),
    /// A range reaches outside the versions the protocol schemas define.
    #[error(
        "API {key:?} registers {min}..={max}, outside the schema's {schema_min}..={schema_max}"
    )]
    OutsideSchema {
        /// The API.
        key: ApiKey,
        /// Registered minimum.
        min: i16,
        /// Registered maximum.
        max: i16,
        /// Schema minimum.
        schema_min: i16,
        /// Schema maximum.
        schema_max: i16,
    },
    /// ApiVersions must always be served, or no client can negotiate.
    #[error("ApiVersions is missing from the registry")]
    MissingApiVersions,
}

/// The set of APIs and versions a server implements.
#[derive(Debug, Clone, Copy)]
pub struct ApiRegistry {
    apis: &'static [ApiSupport],
}

impl ApiRegistry {
    /// A registry over `apis`, in the order ApiVersions will list them.
    pub const fn new(apis: &'static [ApiSupport]) -> Self {
        Self { apis }
    }

    /// Every registered API, in registration order.
    pub fn apis(&self) -> &'static [ApiSupport] {
        self.apis
    }

    /// The registered range of `key`, if any.
    pub fn get(&self, key: ApiKey) -> Option<ApiSupport> {
        self.apis.iter().copied().find(|api| api.key == key)
    }

    /// Whether a request of `key` at `version` may be decoded and dispatched.
    pub fn check(&self, key: ApiKey, version: i16) -> Result<ApiSupport, VersionError> {
        let api = self.get(key).ok_or(VersionError::UnsupportedApi { key })?;
        if api.contains(version) {
            Ok(api)
        } else {
            Err(VersionError::UnsupportedVersion {
                key,
                version,
                min: api.min_version,
                max: api.max_version,
            })
        }
    }

    /// Checks that no API is listed twice, every range lies inside the schema's valid versions,
    /// and ApiVersions is present.
    pub fn validate(&self) -> Result<(), RegistryError> {
        for (i, api) in self.apis.iter().enumerate() {
            if self.apis[..i].iter().any(|other| other.key == api.key) {
                return Err(RegistryError::Duplicate(api.key));
            }
            let schema = api.key.valid_versions();
            if api.min_version < schema.min || api.max_version > schema.max {
                return Err(RegistryError::OutsideSchema {
                    key: api.key,
                    min: api.min_version,
                    max: api.max_version,
                    schema_min: schema.min,
                    schema_max: schema.max,
                });
            }
        }
        if self.get(ApiKey::ApiVersions).is_none() {
            return Err(RegistryError::MissingApiVersions);
        }
        Ok(())
    }
}

/// The version a client should use: the highest version both sides implement (Kafka's
/// `NodeApiVersions.latestUsableVersion`), or `None` when the ranges do not meet.
pub fn latest_usable_version(ours: VersionRange, theirs: VersionRange) -> Option<i16> {
    let common = ours.intersect(&theirs);
    (!common.is_empty()).then_some(common.max)
}

#[cfg(test)]
mod tests {
    use super::*;

    static APIS: [ApiSupport; 2] = [
        ApiSupport::new(ApiKey::ApiVersions, 0, 4),
        ApiSupport::new(ApiKey::Produce, 3, 12),
    ];
    const REGISTRY: ApiRegistry = ApiRegistry::new(&APIS);

    #[test]
    fn check_accepts_only_registered_versions() {
        assert!(REGISTRY.check(ApiKey::Produce, 3).is_ok());
        assert!(REGISTRY.check(ApiKey::Produce, 12).is_ok());
        assert_eq!(
            REGISTRY.check(ApiKey::Produce, 2),
            Err(VersionError::UnsupportedVersion {
                key: ApiKey::Produce,
                version: 2,
                min: 3,
                max: 12
            })
        );
        assert_eq!(
            REGISTRY.check(ApiKey::Fetch, 4),
            Err(VersionError::UnsupportedApi { key: ApiKey::Fetch })
        );
    }

    #[test]
    fn validate_catches_duplicates_schema_overreach_and_missing_api_versions() {
        assert_eq!(REGISTRY.validate(), Ok(()));
        static DUP: [ApiSupport; 3] = [
            ApiSupport::new(ApiKey::ApiVersions, 0, 4),
            ApiSupport::new(ApiKey::Produce, 3, 12),
            ApiSupport::new(ApiKey::Produce, 3, 5),
        ];
        assert_eq!(
            ApiRegistry::new(&DUP).validate(),
            Err(RegistryError::Duplicate(ApiKey::Produce))
        );
        static OVER: [ApiSupport; 1] = [ApiSupport::new(ApiKey::ApiVersions, 0, 99)];
        assert!(matches!(
            ApiRegistry::new(&OVER).validate(),
            Err(RegistryError::OutsideSchema { .. })
        ));
        static NONE: [ApiSupport; 1] = [ApiSupport::new(ApiKey::Produce, 3, 12)];
        assert_eq!(
            ApiRegistry::new(&NONE).validate(),
            Err(RegistryError::MissingApiVersions)
        );
    }

    #[test]
    fn latest_usable_version_is_the_top_of_the_intersection() {
        let ours = VersionRange { min: 3, max: 12 };
        assert_eq!(
            latest_usable_version(ours, VersionRange { min: 0, max: 13 }),
            Some(12)
        );
        assert_eq!(
            latest_usable_version(ours, VersionRange { min: 5, max: 9 }),
            Some(9)
        );
        assert_eq!(
            latest_usable_version(ours, VersionRange { min: 0, max: 2 }),
            None
        );
    }
}
