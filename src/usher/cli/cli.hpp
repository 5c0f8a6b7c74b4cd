// The command line (SPEC §1): parses it, loads the configuration and runs
// one command. `main` only calls run().
#pragma once

namespace usher::cli {

// Returns the process exit status.
int run(int argc, char **argv);

} // namespace usher::cli
