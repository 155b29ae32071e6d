//! `http://host:port/path` URLs as the configuration names them.

/// A parsed `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// Host name or address, without IPv6 brackets.
    pub host: String,
    /// Port (80 when the URL has none).
    pub port: u16,
    /// Path, starting with `/` (`/` when the URL has none). Never a query or fragment.
    pub path: String,
}

impl HttpUrl {
    /// Parses `http://host[:port][/path]`. HTTPS, user info, queries and fragments are refused.
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        let url = url.trim();
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("'{url}' must start with http://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if path.contains(['?', '#', ' ']) || authority.contains('@') {
            return Err(format!(
                "'{url}': only http://host:port/path is supported (no user, query or fragment)"
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("'{url}': unclosed [ in the host"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("'{url}': expected :port after ]"))?,
                ),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() || host.contains(['[', ']']) {
            return Err(format!("'{url}' names no host"));
        }
        let port = match port {
            None => 80,
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("'{url}': port must be a number from 0 to 65535"))?,
        };
        Ok(HttpUrl {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    /// `host:port` as `TcpStream::connect` and the `Host` header want it.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(host: &str, port: u16, path: &str) -> HttpUrl {
        HttpUrl {
            host: host.into(),
            port,
            path: path.into(),
        }
    }

    #[test]
    fn parses_hosts_ports_and_paths() {
        assert_eq!(
            HttpUrl::parse("http://127.0.0.1:9644/metrics"),
            Ok(url("127.0.0.1", 9644, "/metrics"))
        );
        assert_eq!(
            HttpUrl::parse("http://169.254.169.254"),
            Ok(url("169.254.169.254", 80, "/"))
        );
        assert_eq!(
            HttpUrl::parse(" http://[::1]:0/m/x "),
            Ok(url("::1", 0, "/m/x"))
        );
        assert_eq!(
            HttpUrl::parse("http://[fd00::1]"),
            Ok(url("fd00::1", 80, "/"))
        );
        assert_eq!(
            HttpUrl::parse("http://localhost:1/").unwrap().to_string(),
            "http://localhost:1/"
        );
        assert_eq!(url("::1", 5, "/a").to_string(), "http://[::1]:5/a");
    }

    #[test]
    fn refuses_what_it_cannot_serve() {
        for bad in [
            "https://h:1/",
            "h:1",
            "http://:1/",
            "http://h:x/",
            "http://h:70000/",
            "http://u@h:1/",
            "http://h:1/m?x=1",
            "http://[::1/",
            "http://[::1]x/",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
