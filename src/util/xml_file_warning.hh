// xml_file_warning.hh - the comment libvirt puts at the top of every XML file
// it writes itself (domain configs, snapshot and checkpoint metadata), naming
// the virsh command that should be used to change the file instead
// (virXMLEmitWarning). Files we write carry the same text byte for byte.
#pragma once

#include <string>
#include <string_view>

namespace virtsnap::xml {

// True when `name` can be shown in the comment: no shell metacharacters and no
// "--" (which would end the comment).
bool is_shell_safe_comment(std::string_view name);

// "<!--\nWARNING: ...\n  virsh <command>[ <name>]\n...-->\n\n". The first of
// `name` and `fallback` that is non-empty and shell-safe is shown.
std::string file_warning(std::string_view command, std::string_view name = {}, std::string_view fallback = {});

}  // namespace virtsnap::xml
