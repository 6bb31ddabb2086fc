//! The messages the AI functions send a provider, from template files: deployment data,
//! not code. The shipped defaults are `backend/prompts/<function>.jinja`; a directory
//! named by `PROMPTS_DIR` replaces any of them without a rebuild.
//!
//! Each file defines two blocks, `system` and `user`, rendered with the function's
//! variables (see [`FUNCTIONS`]); a template-level `include_history` says whether a
//! conversation's history goes between them. Everything is checked at start: a syntax
//! error, an unknown variable or a template that fails on a sample request stops
//! start-up with the file and line. Printing and the filters follow JavaScript
//! ([`filters`]), so a template literal of the legacy moves over as it reads.

pub mod filters;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Value, json};

/// One function that sends prompts: its file, its variables and a request to try.
#[derive(Debug)]
pub struct PromptSpec {
    pub function: &'static str,
    /// The variables its template may read.
    pub variables: &'static [&'static str],
    /// What the shipped file says, compiled into the binary.
    pub default: &'static str,
    /// Variables of a typical request, rendered at start to catch run-time errors.
    sample: fn() -> Value,
}

impl PromptSpec {
    pub fn file_name(&self) -> String {
        format!("{}.jinja", self.function)
    }
}

const TUTOR_VARIABLES: &[&str] = &["message", "context", "options"];

fn tutor_sample() -> Value {
    json!({
        "message": "Explain photosynthesis",
        "context": {"subject": "Biology", "difficulty": "beginner", "history": [{"role": "user", "content": "Hi"}]},
        "options": {"mode": "chat"},
    })
}

/// Every function whose provider messages come from a template.
pub const FUNCTIONS: &[PromptSpec] = &[
    PromptSpec {
        function: "ai-tutor-professional",
        variables: TUTOR_VARIABLES,
        default: include_str!("../../prompts/ai-tutor-professional.jinja"),
        sample: tutor_sample,
    },
    PromptSpec {
        function: "ai-tutor-stream",
        variables: TUTOR_VARIABLES,
        default: include_str!("../../prompts/ai-tutor-stream.jinja"),
        sample: tutor_sample,
    },
    PromptSpec {
        function: "ai-study-analytics",
        variables: &["sessions", "tasks", "goals"],
        default: include_str!("../../prompts/ai-study-analytics.jinja"),
        sample: || {
            json!({
                "sessions": [{"id": "s1", "title": "Algebra", "duration": 45}],
                "tasks": [{"id": "t1", "title": "Essay", "status": "completed"}],
                "goals": [],
            })
        },
    },
    PromptSpec {
        function: "ai-study-recommendations",
        variables: &[
            "studyData",
            "subjects",
            "goals",
            "timePreferences",
            "currentPerformance",
        ],
        default: include_str!("../../prompts/ai-study-recommendations.jinja"),
        sample: || json!({"subjects": ["Math"], "goals": [{"title": "Pass"}]}),
    },
];

/// The names templates may use besides their variables: minijinja's global functions.
const GLOBALS: &[&str] = &["range", "dict", "namespace", "debug"];

/// Why the prompts could not be loaded; the text names the file and, where known, the line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PromptError(String);

impl PromptError {
    fn at(file: &str, line: Option<usize>, what: impl std::fmt::Display) -> Self {
        match line {
            Some(line) => Self(format!("{file}, line {line}: {what}")),
            None => Self(format!("{file}: {what}")),
        }
    }

    fn from_template(file: &str, error: &minijinja::Error) -> Self {
        let what = error.detail().map_or_else(
            || error.kind().to_string(),
            |detail| format!("{} ({detail})", error.kind()),
        );
        Self::at(file, error.line(), what)
    }
}

/// Where a function's template came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Shipped,
    File(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Shipped => f.write_str("shipped default"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The rendered messages of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub system: String,
    pub user: String,
    /// Whether the conversation's history goes between the system and user messages.
    pub include_history: bool,
}

/// The loaded, checked templates.
pub struct Prompts {
    env: Environment<'static>,
    origins: BTreeMap<&'static str, Origin>,
}

impl std::fmt::Debug for Prompts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prompts")
            .field("origins", &self.origins)
            .finish_non_exhaustive()
    }
}

impl Prompts {
    /// The shipped defaults.
    pub fn shipped() -> Result<Self, PromptError> {
        Self::load(None)
    }

    /// The templates of `dir` where it has them, the shipped defaults elsewhere; a file
    /// of `dir` that is no function's template is an error (a misspelt name would
    /// otherwise leave the default in place unnoticed).
    pub fn load(dir: Option<&Path>) -> Result<Self, PromptError> {
        let mut files: BTreeMap<&'static str, (String, Origin)> = BTreeMap::new();
        if let Some(dir) = dir {
            let entries = std::fs::read_dir(dir).map_err(|e| {
                PromptError(format!("PROMPTS_DIR {}: cannot read: {e}", dir.display()))
            })?;
            for entry in entries {
                let path = entry
                    .map_err(|e| PromptError(format!("PROMPTS_DIR {}: {e}", dir.display())))?
                    .path();
                if !path.is_file() {
                    continue;
                }
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let Some(spec) = FUNCTIONS.iter().find(|s| s.file_name() == name) else {
                    let known: Vec<String> = FUNCTIONS.iter().map(PromptSpec::file_name).collect();
                    return Err(PromptError::at(
                        &path.display().to_string(),
                        None,
                        format!(
                            "not a prompt template of any function (expected one of {})",
                            known.join(", ")
                        ),
                    ));
                };
                let source = std::fs::read_to_string(&path).map_err(|e| {
                    PromptError::at(
                        &path.display().to_string(),
                        None,
                        format!("cannot read: {e}"),
                    )
                })?;
                files.insert(spec.function, (source, Origin::File(path)));
            }
        }

        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        filters::install(&mut env);
        let mut origins = BTreeMap::new();
        for spec in FUNCTIONS {
            let (source, origin) = files
                .remove(spec.function)
                .unwrap_or_else(|| (spec.default.to_owned(), Origin::Shipped));
            let file = origin.describe(spec);
            env.add_template_owned(spec.file_name(), source)
                .map_err(|e| PromptError::from_template(&file, &e))?;
            origins.insert(spec.function, origin);
        }
        let prompts = Self { env, origins };
        for spec in FUNCTIONS {
            prompts.check(spec)?;
        }
        Ok(prompts)
    }

    /// Where each function's template came from.
    pub fn origins(&self) -> &BTreeMap<&'static str, Origin> {
        &self.origins
    }

    /// Unknown variables and a sample render: what would otherwise fail on a request.
    fn check(&self, spec: &PromptSpec) -> Result<(), PromptError> {
        let file = self.origins[spec.function].describe(spec);
        let template = self
            .env
            .get_template(&spec.file_name())
            .map_err(|e| PromptError::from_template(&file, &e))?;
        let mut unknown: Vec<String> = template
            .undeclared_variables(false)
            .into_iter()
            .filter(|name| {
                !spec.variables.contains(&name.as_str()) && !GLOBALS.contains(&name.as_str())
            })
            .collect();
        unknown.sort();
        if let Some(name) = unknown.first() {
            return Err(PromptError::at(
                &file,
                line_of(template.source(), name),
                format!(
                    "unknown variable `{name}` (this function's variables: {})",
                    spec.variables.join(", ")
                ),
            ));
        }
        self.render(spec.function, &(spec.sample)())
            .map(|_| ())
            .map_err(|e| match e {
                RenderError::Template(error) => PromptError::from_template(&file, &error),
                other => PromptError::at(&file, None, other),
            })
    }

    /// The messages of `function` for `variables` (a JSON object).
    pub fn render(&self, function: &str, variables: &Value) -> Result<Rendered, RenderError> {
        let template = self
            .env
            .get_template(&format!("{function}.jinja"))
            .map_err(|_| RenderError::UnknownFunction(function.to_owned()))?;
        let mut captured = template.render_captured(variables)?;
        let (system, user, include_history) = captured.with_state_mut(|state| {
            let system = state.render_block("system")?;
            let user = state.render_block("user")?;
            let include_history = state
                .lookup("include_history")
                .is_none_or(|value| value.is_undefined() || value.is_true());
            Ok::<_, minijinja::Error>((system, user, include_history))
        })?;
        Ok(Rendered {
            system,
            user,
            include_history,
        })
    }
}

/// Why one request's messages could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("no prompt template for function {0}")]
    UnknownFunction(String),
    #[error("prompt template failed: {0}")]
    Template(#[from] minijinja::Error),
}

impl Origin {
    /// The file as an operator would look for it.
    fn describe(&self, spec: &PromptSpec) -> String {
        match self {
            Self::Shipped => format!("backend/prompts/{} (shipped)", spec.file_name()),
            Self::File(path) => path.display().to_string(),
        }
    }
}

/// The first line where `name` appears as a whole word inside a tag.
fn line_of(source: &str, name: &str) -> Option<usize> {
    let word =
        regex::Regex::new(&format!(r"(\{{\{{|\{{%)[^}}]*\b{}\b", regex::escape(name))).ok()?;
    let found = word.find(source)?;
    let start = source[..found.end()].rfind(name).unwrap_or(found.start());
    Some(source[..start].matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary directory holding `files` (removed when dropped).
    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temporary directory");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write");
        }
        dir
    }

    #[test]
    fn the_shipped_defaults_load() {
        let prompts = Prompts::shipped().expect("loads");
        assert!(prompts.origins().values().all(|o| *o == Origin::Shipped));
        let stream = prompts
            .render("ai-tutor-stream", &json!({"message": "hi", "context": {}}))
            .expect("renders");
        let tutor = prompts
            .render(
                "ai-tutor-professional",
                &json!({"message": "hi", "context": {}}),
            )
            .expect("renders");
        assert_eq!(stream, tutor, "the stream inherits the tutor's blocks");
        assert!(tutor.include_history);
    }

    #[test]
    fn a_directory_overrides_one_function_and_keeps_the_rest() {
        let dir = dir_with(&[(
            "ai-study-recommendations.jinja",
            "{% block system %}Be brief.{% endblock %}{% block user %}{{ subjects|json }}{% endblock %}",
        )]);
        let prompts = Prompts::load(Some(dir.path())).expect("loads");
        let rendered = prompts
            .render("ai-study-recommendations", &json!({"subjects": ["Math"]}))
            .expect("renders");
        assert_eq!(rendered.system, "Be brief.");
        assert_eq!(rendered.user, "[\"Math\"]");
        assert_eq!(prompts.origins()["ai-tutor-professional"], Origin::Shipped);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        // (file, its text, what the error must say)
        let cases = [
            (
                "ai-study-analytics.jinja",
                "{% block system %}x{% endblock %}\n{% block user %}\n{{ sessions|json(2) }}\n{% if %}{% endblock %}",
                "ai-study-analytics.jinja, line 4: syntax error",
            ),
            (
                "ai-study-analytics.jinja",
                "{% block system %}x{% endblock %}\n{% block user %}\n{{ session|json(2) }}{% endblock %}",
                "ai-study-analytics.jinja, line 3: unknown variable `session`",
            ),
            (
                "ai-study-analytics.jinja",
                "{% block system %}x{% endblock %}{% block user %}{{ goals|shout }}{% endblock %}",
                "ai-study-analytics.jinja, line 1: unknown filter",
            ),
            (
                "ai-tutor.jinja",
                "{% block system %}{% endblock %}",
                "not a prompt template of any function",
            ),
            (
                "ai-study-analytics.jinja",
                "{% block system %}x{% endblock %}",
                "ai-study-analytics.jinja",
            ),
        ];
        for (file, text, expected) in cases {
            let dir = dir_with(&[(file, text)]);
            let error = Prompts::load(Some(dir.path()))
                .expect_err(expected)
                .to_string();
            assert!(error.contains(expected), "{error}");
        }
    }
}
