//! Email addresses and domains: what counts as valid, and which domains are public webmail.

/// Webmail providers whose domains an organization may not claim: anyone can have an address
/// there, so allowing one would let strangers join. The list is Stytch's (invite page).
const COMMON_WEBMAIL_NAMES: &[&str] = &[
    "gmail",
    "aol",
    "yahoo",
    "icloud",
    "hotmail",
    "msn",
    "comcast",
    "live",
    "outlook",
    "att",
    "earthlink",
    "me",
    "mac",
    "sbcglobal",
    "verizon",
    "ig",
    "mail",
    "hey",
    "laposte",
    "wanadoo",
    "googlemail",
    "orange",
    "rediffmail",
    "uol",
    "bol",
    "free",
    "gmx",
    "yandex",
    "ymail",
    "libero",
];

/// Second-level public suffixes under which a webmail provider's registrable name sits one
/// label further left (`yahoo.co.uk`, `uol.com.br`).
const SECOND_LEVEL_SUFFIXES: &[&str] = &[
    "co.uk", "org.uk", "me.uk", "com.br", "co.jp", "com.au", "net.au", "co.in", "co.nz", "com.mx",
    "com.ar", "co.za", "com.tr", "com.cn", "com.tw", "co.kr", "com.sg", "co.id", "com.my",
];

#[derive(Debug, PartialEq, Eq)]
pub enum DomainProblem {
    Invalid(String),
    CommonWebmail(String),
}

impl DomainProblem {
    pub fn message(&self) -> String {
        match self {
            DomainProblem::Invalid(domain) => format!(
                "`{domain}` is not a valid domain: use a hostname such as `acme.com` \
                 (letters, digits and hyphens in dot-separated labels, no scheme, no @)"
            ),
            DomainProblem::CommonWebmail(domain) => format!(
                "`{domain}` is a common webmail domain that anyone can get an address on; \
                 list only domains your organization owns"
            ),
        }
    }
}

/// Whether `text` has the shape of an email address: a local part, `@`, a dotted domain, no
/// whitespace. Every path that takes an email (SCIM, the API, invites, JIT) asks this.
pub fn is_email_address(text: &str) -> bool {
    match text.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !text.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// Validates an email domain an organization claims and returns it lowercased.
pub fn normalize_allowed_domain(input: &str) -> Result<String, DomainProblem> {
    let domain = normalize_domain(input)?;
    if is_common_webmail(&domain) {
        return Err(DomainProblem::CommonWebmail(domain));
    }
    Ok(domain)
}

/// A hostname of at least two labels, each 1–63 letters, digits or inner hyphens, at most 253
/// characters, with an alphabetic (or punycode) top-level label. Returned lowercased.
pub fn normalize_domain(input: &str) -> Result<String, DomainProblem> {
    let domain = input.trim().trim_end_matches('.').to_ascii_lowercase();
    let invalid = || DomainProblem::Invalid(input.trim().to_string());
    if domain.is_empty() || domain.len() > 253 {
        return Err(invalid());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(invalid());
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if !labels.iter().all(|label| label_ok(label)) {
        return Err(invalid());
    }
    let top = labels[labels.len() - 1];
    let top_ok =
        top.starts_with("xn--") || (top.len() >= 2 && top.bytes().all(|b| b.is_ascii_lowercase()));
    if !top_ok {
        return Err(invalid());
    }
    Ok(domain)
}

/// Whether `domain` (already normalized) is, or is under, a common webmail provider's
/// registrable domain: `gmail.com`, `yahoo.co.uk`, `eu.gmail.com` — but not `mail.acme.com`.
pub fn is_common_webmail(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    let suffix_len = if labels.len() >= 3
        && SECOND_LEVEL_SUFFIXES.contains(&labels[labels.len() - 2..].join(".").as_str())
    {
        2
    } else {
        1
    };
    if labels.len() <= suffix_len {
        return false;
    }
    let registrable_name = labels[labels.len() - suffix_len - 1];
    COMMON_WEBMAIL_NAMES.contains(&registrable_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_lowercased_and_trimmed() {
        assert_eq!(normalize_allowed_domain(" Acme.COM ").unwrap(), "acme.com");
        assert_eq!(
            normalize_allowed_domain("eu.acme.co.uk.").unwrap(),
            "eu.acme.co.uk"
        );
        assert_eq!(
            normalize_allowed_domain("xn--bcher-kva.example").unwrap(),
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn malformed_domains_are_refused() {
        for input in [
            "",
            "acme",
            "acme..com",
            "-acme.com",
            "acme-.com",
            "ac me.com",
            "ada@acme.com",
            "https://acme.com",
            "acme.c0m",
            "acme.c",
            &format!("{}.com", "a".repeat(64)),
        ] {
            assert!(
                matches!(normalize_domain(input), Err(DomainProblem::Invalid(_))),
                "{input}"
            );
        }
    }

    #[test]
    fn webmail_domains_are_refused_but_lookalike_subdomains_are_not() {
        for webmail in [
            "gmail.com",
            "GMAIL.com",
            "yahoo.co.uk",
            "uol.com.br",
            "free.fr",
            "eu.gmail.com",
            "me.com",
        ] {
            assert!(
                matches!(
                    normalize_allowed_domain(webmail),
                    Err(DomainProblem::CommonWebmail(_))
                ),
                "{webmail}"
            );
        }
        for owned in [
            "mail.acme.com",
            "acme.com",
            "gmail-partners.com",
            "live.acme.io",
            "acme.co.uk",
        ] {
            assert!(normalize_allowed_domain(owned).is_ok(), "{owned}");
        }
    }
}
