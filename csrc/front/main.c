/*
 * runnc-py: what engines run for every container. The hot verbs of a container in a plain
 * state are done here; every other call goes to the Python CLI unchanged (see front.h).
 */
#include "front.h"

int main(int argc, char **argv)
{
    struct command cmd;
    handover_init(argc, argv);
    if (!parse_command(argc, argv, &cmd))
        handover("not a fast-path command line");
    switch (cmd.verb) {
    case VERB_STATE:
        return verb_state(&cmd);
    case VERB_START:
        return verb_start(&cmd);
    case VERB_KILL:
        return verb_kill(&cmd);
    case VERB_DELETE:
        return verb_delete(&cmd);
    }
    handover("unknown verb");
}
