// The web UI's routes: GET / and GET /assets/NAME (ui/ui.hpp decides the
// bytes and headers), and GET /api/v1/whoami, which tells the UI which
// screens a token may use.
#include <usher/http/api.hpp>

#include <usher/ui/ui.hpp>

namespace usher::http {

void Api::ui_page(const Request &req) {
  auto page = ui::page_for(req->path);
  reply(req, Response{page.status, std::string(page.body), std::move(page.content_type),
                      std::move(page.headers)});
}

void Api::whoami(const Request &req) {
  authenticate(req, {auth::Role::sales_manager, auth::Role::admin},
               [this, req](const auth::Principal &principal) {
                 reply(req, json_response(200, {{"name", principal.name},
                                                {"role", auth::to_string(principal.role)},
                                                {"token_id", principal.token_id}}));
               });
}

} // namespace usher::http
