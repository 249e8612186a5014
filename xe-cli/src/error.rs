//! Everything that can end a command unsuccessfully, and how upstream xe prints each kind on
//! stderr. Never performs API calls: error parameters are resolved by the caller beforehand.
use crate::table::data;

/// Why a command failed.
#[derive(Debug, Clone, PartialEq)]
pub enum CliError {
    /// A XenAPI error: code and parameters as the server sent them.
    Api { code: String, params: Vec<String> },
    /// A client-side failure; printed as `Error: <text>`.
    Failure(String),
    /// The command name is not in the table.
    UnknownCommand(String),
    /// A required parameter is missing.
    ParamNotFound(String),
    /// The command line could not be parsed.
    Syntax(String),
    /// A field name that the class's CLI record does not have.
    MissingField(String),
    /// Several objects were operated on and some failed: `(uuid, message)`.
    Multiple(Vec<(String, String)>),
    /// The server could not be reached or spoke something else than XenAPI.
    Transport(String),
    /// A message upstream prints on stderr as it is (`Export failed, unknown error.`).
    Stderr(String),
}

/// Shorthand for a client-side failure.
pub fn fail(text: impl Into<String>) -> CliError {
    CliError::Failure(text.into())
}

/// The message line and `name: value` lines xe prints for a documented API error.
pub fn describe_api_error(code: &str, params: &[String]) -> Option<(String, Vec<String>)> {
    let doc = data().errors.get(code)?;
    let mut lines = Vec::new();
    let mut names = doc.params.iter();
    for value in params {
        match names.next() {
            Some(name) => lines.push(format!("{name}: {value}")),
            None => lines.push(format!("<extra>: {value}")),
        }
    }
    for name in names {
        lines.push(format!("{name}: <unknown>"));
    }
    Some((doc.message.clone(), lines))
}

impl CliError {
    /// The text xe writes: `(stdout, stderr)`.
    pub fn render(&self) -> (String, String) {
        let usage = "For usage run: 'xe help'\n";
        match self {
            CliError::Api { code, params } if code == "SESSION_AUTHENTICATION_FAILED" => {
                let who = params.first().map(String::as_str).unwrap_or("");
                let text = if who.is_empty() {
                    "Username/password must be specified"
                } else {
                    "Authentication failed"
                };
                (String::new(), format!("{text}\n{usage}"))
            }
            CliError::Api { code, params } => match describe_api_error(code, params) {
                Some((message, lines)) => {
                    let mut err = format!("{message}\n");
                    for l in lines {
                        err.push_str(&l);
                        err.push('\n');
                    }
                    (String::new(), err)
                }
                None => (
                    String::new(),
                    format!(
                        "Error code: {code}\nError parameters: {}\n",
                        params.join(", ")
                    ),
                ),
            },
            CliError::Failure(text) => (String::new(), format!("Error: {text}\n")),
            CliError::UnknownCommand(name) => {
                (String::new(), format!("Unknown command: {name}\n{usage}"))
            }
            CliError::ParamNotFound(name) => (
                String::new(),
                format!("Required parameter not found: {name}\n{usage}"),
            ),
            CliError::Syntax(text) => (String::new(), format!("Syntax error: {text}\n{usage}")),
            CliError::MissingField(name) => (
                String::new(),
                format!("Error code: Missing parameter\nError parameters: {name}\n"),
            ),
            CliError::Multiple(fails) => {
                let mut out = String::new();
                for (uuid, msg) in fails {
                    out.push_str(&format!("operation failed on {uuid}: {msg}\n"));
                }
                (out, String::new())
            }
            CliError::Transport(text) => (String::new(), format!("Error: {text}\n")),
            CliError::Stderr(text) => (String::new(), format!("{text}\n")),
        }
    }

    /// The text of this error as one `message` for `--multiple` summaries.
    pub fn one_line(&self) -> String {
        match self {
            CliError::Api { code, params } => match describe_api_error(code, params) {
                Some((m, lines)) => format!("{m}\n{}", lines.join("\n")),
                None => format!("{code}: [ {} ]", params.join("; ")),
            },
            CliError::Failure(t) => t.clone(),
            other => other.render().1.trim_end().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_api_error_prints_message_then_named_params() {
        let e = CliError::Api {
            code: "UUID_INVALID".into(),
            params: vec!["VM".into(), "nope".into()],
        };
        assert_eq!(
            e.render().1,
            "The uuid you supplied was invalid.\ntype: VM\nuuid: nope\n"
        );
    }

    #[test]
    fn undocumented_api_error_prints_code_and_params() {
        let e = CliError::Api {
            code: "NO_SUCH_CODE".into(),
            params: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            e.render().1,
            "Error code: NO_SUCH_CODE\nError parameters: a, b\n"
        );
    }

    #[test]
    fn missing_and_extra_params_are_marked() {
        let (_, lines) = describe_api_error("UUID_INVALID", &["VM".into()]).unwrap();
        assert_eq!(lines, vec!["type: VM", "uuid: <unknown>"]);
        let (_, lines) =
            describe_api_error("NOT_IMPLEMENTED", &["VM.start".into(), "x".into()]).unwrap();
        assert_eq!(lines, vec!["function: VM.start", "<extra>: x"]);
    }

    #[test]
    fn unknown_command_points_at_help() {
        let (_, err) = CliError::UnknownCommand("frob".into()).render();
        assert_eq!(err, "Unknown command: frob\nFor usage run: 'xe help'\n");
    }
}
