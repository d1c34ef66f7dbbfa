#pragma once

#include <map>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace hoist::provisioner {

/// The built-in user-data template (provisioner/bootstrap-user-data.sh).
std::string_view defaultUserDataTemplate();

/// Quotes a word for POSIX sh: 'it'\''s'.
std::string shellQuote(std::string_view word);

/// Replaces each `{{name}}` with the shell-quoted value of `name`. Invalid when the template
/// names a placeholder that `values` lacks, or a `{{` is not closed.
Result<std::string> renderUserData(std::string_view tmpl,
                                   const std::map<std::string, std::string>& values);

}  // namespace hoist::provisioner
