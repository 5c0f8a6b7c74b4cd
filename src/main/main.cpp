// usher's entry point: everything lives in usher_core; see ARCHITECTURE.md.
#include <usher/cli/cli.hpp>

int main(int argc, char **argv) { return usher::cli::run(argc, argv); }
