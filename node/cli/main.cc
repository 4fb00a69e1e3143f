// pbxctl: the command-line client of pbxd's REST API. Parses flags and runs one verb of
// node/cli/commands.h; everything else lives there.

#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "node/cli/commands.h"

int main(int argc, char** argv) {
  using pbx::cli::ExtAddOptions;
  using pbx::cli::GlobalOptions;

  GlobalOptions g;
  CLI::App app{"pbxctl: control a running pbxd through its REST API", "pbxctl"};
  app.require_subcommand(1);
  app.option_defaults()->always_capture_default(false);
  app.add_option("--run-dir", g.run_dir,
                 "Run directory of the local pbxd (default: $PBX_RUN_DIR, ./.pbx/run, /run/pbx)");
  app.add_option("--api", g.api_url, "API URL instead of the local daemon (https://host:port)");
  app.add_option("--token", g.token, "Bearer token (default: RUN_DIR/admin.token)")
      ->envname("PBX_TOKEN");
  app.add_option("--user", g.user, "Log in as this user");
  app.add_option("--password", g.password, "Password for --user")->envname("PBX_PASSWORD");
  app.add_option("--ca", g.ca_file, "CA/certificate PEM to verify the API with");
  app.add_flag("--insecure", g.insecure, "Do not verify the API's certificate");

  CLI::App* status = app.add_subcommand("status", "Node and cluster status");
  status->add_flag("--json", g.json, "Print JSON");

  CLI::App* ext = app.add_subcommand("ext", "Manage IP extensions");
  ext->require_subcommand(1);
  CLI::App* ext_list = ext->add_subcommand("list", "List extensions");
  ext_list->add_flag("--json", g.json, "Print JSON");

  std::string number;
  CLI::App* ext_show = ext->add_subcommand("show", "Show one extension");
  ext_show->add_option("NUMBER", number, "Extension number")->required();
  ext_show->add_flag("--json", g.json, "Print JSON");

  ExtAddOptions add;
  uint32_t max_contacts = 0;
  bool web_login = false;
  bool call_waiting = true;
  CLI::App* ext_add = ext->add_subcommand("add", "Create an extension");
  ext_add->add_option("NUMBER", add.number, "Extension number (2-11 digits)")->required();
  ext_add->add_option("--name", add.name, "Display name")->required();
  ext_add->add_option("--password", add.password,
                      "SIP and portal password (default: generate and print one)");
  ext_add->add_option("--email", add.email, "Email address");
  ext_add->add_option("--mobile", add.mobile, "Mobile number (a note)");
  ext_add->add_option("--transport", add.transport, "udp, tcp or tls");
  ext_add->add_option("--dtmf-mode", add.dtmf_mode, "rfc4733, info, inband or auto");
  CLI::Option* max_contacts_opt =
      ext_add->add_option("--max-contacts", max_contacts, "Simultaneous registrations (1-10)");
  CLI::Option* web_login_opt =
      ext_add->add_flag("--web-login,!--no-web-login", web_login, "Enable the user portal");
  CLI::Option* call_waiting_opt =
      ext_add->add_flag("--call-waiting,!--no-call-waiting", call_waiting,
                        "A second call rings (default) or is busy");
  ext_add->add_option("--codecs", add.codecs, "Codecs in order, e.g. PCMU,PCMA,G722")
      ->delimiter(',');
  ext_add->add_option("--voicemail-pin", add.voicemail_pin, "Voicemail PIN (4-8 digits)");
  ext_add->add_flag("--json", g.json, "Print JSON");

  CLI::App* ext_del = ext->add_subcommand("del", "Delete an extension");
  ext_del->add_option("NUMBER", number, "Extension number")->required();

  CLI::App* reg = app.add_subcommand("reg", "Registrations of SIP phones");
  reg->require_subcommand(1);
  CLI::App* reg_list = reg->add_subcommand("list", "List registered contacts");
  reg_list->add_flag("--json", g.json, "Print JSON");

  std::string ip;
  pbx::cli::TrunkAddOptions trunk_add_opts;
  std::string trunk_name;
  CLI::App* trunk = app.add_subcommand("trunk", "SIP trunks and their registration state");
  trunk->require_subcommand(1);
  CLI::App* trunk_list = trunk->add_subcommand("list", "List trunks with their state");
  trunk_list->add_flag("--json", g.json, "Print JSON");
  CLI::App* trunk_add = trunk->add_subcommand("add", "Create a trunk");
  trunk_add->add_option("NAME", trunk_add_opts.name, "Trunk name")->required();
  trunk_add->add_option("--host", trunk_add_opts.host, "The carrier's address")->required();
  trunk_add->add_option("--set", trunk_add_opts.set,
                        "KEY=VALUE of any other field: mode=peer, port=5080, username=u, "
                        "password=p, expiry=300, new_call_id_per_register=true, ...");
  trunk_add->add_flag("--json", g.json, "Print JSON");
  CLI::App* trunk_del = trunk->add_subcommand("del", "Delete a trunk");
  trunk_del->add_option("NAME", trunk_name, "Trunk name")->required();

  std::string route_kind, route_arg;
  CLI::App* route = app.add_subcommand(
      "route",
      "The dial plan: outbound, inbound, did, blacklist, time-condition, permission, "
      "pin-set");
  route->require_subcommand(1);
  CLI::App* route_list = route->add_subcommand("list", "List the records of a kind");
  route_list->add_option("KIND", route_kind, "outbound, inbound, did, ...")->required();
  route_list->add_flag("--json", g.json, "Print JSON");
  CLI::App* route_add = route->add_subcommand("add", "Create a record from JSON");
  route_add->add_option("KIND", route_kind, "outbound, inbound, did, ...")->required();
  route_add
      ->add_option("JSON", route_arg,
                   R"(The record, e.g. '{"name":"local","rules":[{"prefix":"9",)"
                   R"("pattern":"NXXXXXX"}],"trunks":["acme"]}')")
      ->required();
  route_add->add_flag("--json", g.json, "Print JSON");
  CLI::App* route_del = route->add_subcommand("del", "Delete a record");
  route_del->add_option("KIND", route_kind, "outbound, inbound, did, ...")->required();
  route_del->add_option("KEY", route_arg, "Its name (trunk, number)")->required();

  CLI::App* ban = app.add_subcommand("ban", "Sources banned by intrusion protection");
  ban->require_subcommand(1);
  CLI::App* ban_list = ban->add_subcommand("list", "List banned sources");
  ban_list->add_flag("--json", g.json, "Print JSON");
  CLI::App* ban_del = ban->add_subcommand("del", "Lift the ban of a source");
  ban_del->add_option("IP", ip, "The banned address")->required();

  CLI::App* calls = app.add_subcommand("calls", "Calls in progress");
  calls->add_flag("--json", g.json, "Print JSON");
  pbx::cli::CdrFilter cdr_filter;
  CLI::App* cdr = app.add_subcommand("cdr", "Call detail records, oldest first");
  cdr->add_option("--from", cdr_filter.from, "Calls started at or after (unix seconds)");
  cdr->add_option("--to", cdr_filter.to, "Calls started before (unix seconds)");
  cdr->add_option("--caller", cdr_filter.caller, "Calling number");
  cdr->add_option("--callee", cdr_filter.callee, "Called number");
  cdr->add_option("--type", cdr_filter.type, "internal, inbound or outbound")
      ->check(CLI::IsMember({"internal", "inbound", "outbound"}));
  cdr->add_option("--pin", cdr_filter.pin, "The PIN entered for a route's PIN set");
  cdr->add_option("--limit", cdr_filter.limit, "At most this many (1-10000, default 100)");
  cdr->add_flag("--json", g.json, "Print JSON");

  CLI::App* switchover =
      app.add_subcommand("switchover", "Hand the active role to the standby, losing nothing");
  std::string maintenance_mode;
  bool force = false;
  CLI::App* maintenance =
      app.add_subcommand("maintenance", "Take this node out of service, or bring it back");
  maintenance->add_option("MODE", maintenance_mode, "on or off")
      ->required()
      ->check(CLI::IsMember({"on", "off"}));
  maintenance->add_flag("--force", force,
                        "On an active without a caught-up standby: stop serving anyway");

  // Global options may also follow the verb: `pbxctl status --run-dir X`.
  for (CLI::App* sub :
       {status, ext, ext_list, ext_show, ext_add, ext_del, reg, reg_list, ban, ban_list, ban_del,
        calls, cdr, switchover, maintenance, trunk, trunk_list, trunk_add, trunk_del}) {
    sub->fallthrough();
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : pbx::cli::kExitUsage;
  }
  if (max_contacts_opt->count() > 0) add.max_contacts = max_contacts;
  if (web_login_opt->count() > 0) add.web_login = web_login;
  if (call_waiting_opt->count() > 0) add.call_waiting = call_waiting;

  if (status->parsed()) return pbx::cli::RunStatus(g, std::cout, std::cerr);
  if (ext_list->parsed()) return pbx::cli::RunExtList(g, std::cout, std::cerr);
  if (ext_show->parsed()) return pbx::cli::RunExtShow(g, number, std::cout, std::cerr);
  if (ext_add->parsed()) return pbx::cli::RunExtAdd(g, add, std::cout, std::cerr);
  if (ext_del->parsed()) return pbx::cli::RunExtDel(g, number, std::cout, std::cerr);
  if (reg_list->parsed()) return pbx::cli::RunRegList(g, std::cout, std::cerr);
  if (ban_list->parsed()) return pbx::cli::RunBanList(g, std::cout, std::cerr);
  if (ban_del->parsed()) return pbx::cli::RunBanDel(g, ip, std::cout, std::cerr);
  if (trunk_list->parsed()) return pbx::cli::RunTrunkList(g, std::cout, std::cerr);
  if (trunk_add->parsed()) return pbx::cli::RunTrunkAdd(g, trunk_add_opts, std::cout, std::cerr);
  if (trunk_del->parsed()) return pbx::cli::RunTrunkDel(g, trunk_name, std::cout, std::cerr);
  if (route_list->parsed()) return pbx::cli::RunRouteList(g, route_kind, std::cout, std::cerr);
  if (route_add->parsed()) {
    return pbx::cli::RunRouteAdd(g, route_kind, route_arg, std::cout, std::cerr);
  }
  if (route_del->parsed()) {
    return pbx::cli::RunRouteDel(g, route_kind, route_arg, std::cout, std::cerr);
  }
  if (calls->parsed()) return pbx::cli::RunCalls(g, std::cout, std::cerr);
  if (cdr->parsed()) return pbx::cli::RunCdr(g, cdr_filter, std::cout, std::cerr);
  if (switchover->parsed()) return pbx::cli::RunSwitchover(g, std::cout, std::cerr);
  if (maintenance->parsed()) {
    return pbx::cli::RunMaintenance(g, maintenance_mode == "on", force, std::cout, std::cerr);
  }
  std::cerr << app.help();
  return pbx::cli::kExitUsage;
}
