// xml_file_warning.cc - libvirt's auto-generated-file comment.

#include "util/xml_file_warning.hh"

namespace virtsnap::xml {

bool is_shell_safe_comment(std::string_view name) {
    static constexpr std::string_view unsafe = "\r\t\n !\"#$&'()*;<>?[\\]^`{|}~";
    return name.find_first_of(unsafe) == std::string_view::npos && name.find("--") == std::string_view::npos;
}

std::string file_warning(std::string_view command, std::string_view name, std::string_view fallback) {
    std::string out =
        "<!--\n"
        "WARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE\n"
        "OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:\n"
        "  virsh ";
    out += command;
    // An empty candidate counts as absent, as a NULL string does in libvirt.
    std::string_view shown;
    if (!name.empty() && is_shell_safe_comment(name)) shown = name;
    else if (!fallback.empty() && is_shell_safe_comment(fallback)) shown = fallback;
    if (!shown.empty()) {
        out += ' ';
        out += shown;
    }
    out +=
        "\n"
        "or other application using the libvirt API.\n"
        "-->\n\n";
    return out;
}

}  // namespace virtsnap::xml
