function __tern_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __tern_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __tern_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __tern_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __tern_parse_tokens -S
    set -l unparsed_tokens (__tern_tokens -pc)
    switch $unparsed_tokens[1]
    case 'tern'
        __tern_parse_subcommand 0 'version' 'h/help'
        switch $unparsed_tokens[1]
        case 'send'
            __tern_parse_subcommand -r 1 'code=' 'text=' 'ignore-unsendable-files' 'no-qr' 'relay=' 'lan' 'json' 'timeout=' 'force-relay' 'q/quiet' 'v/verbose' 'version' 'h/help'
        case 'receive'
            __tern_parse_subcommand 1 'y/yes' 'o/output=' 'overwrite' 'rename' 'skip-existing' 'no-resume' 'from=' 'relay=' 'lan' 'json' 'timeout=' 'force-relay' 'q/quiet' 'v/verbose' 'version' 'h/help'
        case 'relay'
            __tern_parse_subcommand 0 'listen=' 'stun-listen=' 'stun-advertise=+' 'turn-uri=+' 'turn-secret=' 'turn-tls-cert=' 'turn-ttl=' 'max-message-bytes=' 'idle-timeout=' 'max-messages-per-side=' 'max-bytes-per-side=' 'max-bytes-per-address=' 'max-bytes-total=' 'handshake-timeout=' 'claim-timeout=' 'claims-per-minute=' 'max-tombstones-per-address=' 'max-connections-per-address=' 'max-mailboxes-per-address=' 'max-mailboxes=' 'max-connections=' 'tls-cert=' 'tls-key=' 'web=' 'no-web' 'metrics-listen=' 'log-level=' 'version' 'h/help'
        case 'config'
            __tern_parse_subcommand 0 'json' 'version' 'h/help'
        case 'help'
            __tern_parse_subcommand -r 1 'version'
        end
    end
end

function __tern_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __tern_parse_subcommand -S -a positional_count
    argparse -s r -- $argv
    set -l option_specs $argv[2..]
    set -l is_repeating_positional $_flag_r
    set -el _flag_r
    set -a commands $unparsed_tokens[1]
    set positional_index 0
    while true
        set -e unparsed_tokens[1]
        argparse -sn "$commands" $option_specs -- $unparsed_tokens 2> /dev/null
        set unparsed_tokens $argv
        set positional_index (math $positional_index + 1)
        for non_repeating_flag_or_option in $non_repeating_flags_or_options
            if set -ql "_flag_$(string replace -a - _ -- $non_repeating_flag_or_option)"
                set non_repeating_flags_or_options_absent 1
                break
            end
        end
        test (count $unparsed_tokens) -eq 0 -o \( -z "$is_repeating_positional" -a "$positional_index" -gt "$positional_count" \) && break
    end
end

function __tern_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __tern_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__tern_tokens -p)
    if test -z "$(__tern_tokens -t)"
        set -l index (count (__tern_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'tern' -f
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern" version' -l 'version' -d 'Show the version.'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tern' -n '__tern_should_offer_completions_for_positional "tern" -eq 1' -fa 'send' -d 'Send files, directories, a stream or a text to another machine.'
complete -c 'tern' -n '__tern_should_offer_completions_for_positional "tern" -eq 1' -fa 'receive' -d 'Receive what another machine sends, with the code it printed.'
complete -c 'tern' -n '__tern_should_offer_completions_for_positional "tern" -eq 1' -fa 'relay' -d 'Run a rendezvous relay: pairs senders and receivers, answers STUN, hands out TURN credentials.'
complete -c 'tern' -n '__tern_should_offer_completions_for_positional "tern" -eq 1' -fa 'config' -d 'Show the effective settings and where each comes from.'
complete -c 'tern' -n '__tern_should_offer_completions_for_positional "tern" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'tern' -n '__tern_should_offer_completions_for_positional "tern send" -ge 1' -F
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern send" code' -l 'code' -d 'Use this pre-agreed code instead of asking the relay for one (default: $TERN_CODE).' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern send" text' -l 'text' -d 'Send a short text instead of files.' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern send" ignore-unsendable-files' -l 'ignore-unsendable-files' -d 'Leave out, with a warning each, files that cannot be read or whose names the receiver would refuse (by default they stop tern before anything is offered).'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern send" no-qr' -l 'no-qr' -d 'Do not print the QR code of the receive link (it is printed when standard output is a terminal wide enough).'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern send" relay' -l 'relay' -d 'The rendezvous relay, a ws:// base URL such as ws://127.0.0.1:4747 (default: $TERN_RELAY).' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern send" lan' -l 'lan' -d 'LAN mode even with a relay configured: the sender runs the rendezvous itself and announces it on the local network, the receiver looks for it there (the default when no relay is configured).'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern send" json' -l 'json' -d 'Print one JSON object per line for each event, on stdout.'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern send" timeout' -l 'timeout' -d 'Give up after this many seconds for the whole job.' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern send" force-relay' -l 'force-relay' -d 'Connect through the relay\'s TURN server only, so the other side never learns this machine\'s addresses.'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern send" q quiet' -l 'quiet' -s 'q' -d 'Print nothing but errors (no progress, no summary).'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern send" v verbose' -l 'verbose' -s 'v' -d 'Log what the connection does (candidates, checks, TURN) on stderr.'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern send" version' -l 'version' -d 'Show the version.'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern send" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern receive" y yes' -l 'yes' -s 'y' -d 'Accept the offer without asking.'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern receive" o output' -s 'o' -l 'output' -d 'Write under this directory (default: the current one). When one file or stream is offered, a name that is not a directory names it, and \'-\' writes it to standard output.' -rfa '(__tern_complete_directories)'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern receive" overwrite' -l 'overwrite' -d 'Replace files that already exist.'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern receive" rename' -l 'rename' -d 'Keep files that already exist and write \'name (1).ext\' instead.'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern receive" skip-existing' -l 'skip-existing' -d 'Keep files that already exist and leave the offered ones out.'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern receive" no-resume' -l 'no-resume' -d 'Ignore partial files of an earlier attempt and start over.'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern receive" from' -l 'from' -d 'LAN mode: ask the sender at this IP address directly (when multicast does not reach it), or connect to the address:port it printed. IPv6: fd74:6e::11 or [fd74:6e::11]:PORT; a link-local one with its interface, fe80::1%eth0.' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern receive" relay' -l 'relay' -d 'The rendezvous relay, a ws:// base URL such as ws://127.0.0.1:4747 (default: $TERN_RELAY).' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern receive" lan' -l 'lan' -d 'LAN mode even with a relay configured: the sender runs the rendezvous itself and announces it on the local network, the receiver looks for it there (the default when no relay is configured).'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern receive" json' -l 'json' -d 'Print one JSON object per line for each event, on stdout.'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern receive" timeout' -l 'timeout' -d 'Give up after this many seconds for the whole job.' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern receive" force-relay' -l 'force-relay' -d 'Connect through the relay\'s TURN server only, so the other side never learns this machine\'s addresses.'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern receive" q quiet' -l 'quiet' -s 'q' -d 'Print nothing but errors (no progress, no summary).'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern receive" v verbose' -l 'verbose' -s 'v' -d 'Log what the connection does (candidates, checks, TURN) on stderr.'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern receive" version' -l 'version' -d 'Show the version.'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern receive" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" listen' -l 'listen' -d 'Address for the WebSocket rendezvous and /health.' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" stun-listen' -l 'stun-listen' -d 'UDP address of the STUN binding responder, or \'off\'.' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay"' -l 'stun-advertise' -d 'STUN URI to announce instead of the relay\'s own (repeatable).' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay"' -l 'turn-uri' -d 'TURN server URI to hand out, e.g. turn:turn.example:3478?transport=udp (repeatable).' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" turn-secret' -l 'turn-secret' -d 'Secret shared with the TURN server (coturn\'s static-auth-secret; default: $TERN_TURN_SECRET).' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" turn-tls-cert' -l 'turn-tls-cert' -d 'PEM certificate of the turns: servers: hand out its SHA-256 pin, so clients accept it without a public CA.' -rF
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" turn-ttl' -l 'turn-ttl' -d 'Lifetime of handed-out TURN credentials.' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" max-message-bytes' -l 'max-message-bytes' -d 'Largest mailbox message.' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" idle-timeout' -l 'idle-timeout' -d 'Remove mailboxes and waiting nameplates idle this long.' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" max-messages-per-side' -l 'max-messages-per-side' -d 'Messages one side may add to one mailbox.' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" max-bytes-per-side' -l 'max-bytes-per-side' -d 'Bytes one side may store in one mailbox.' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" max-bytes-per-address' -l 'max-bytes-per-address' -d 'Bytes stored in mailboxes per client address (IPv6: per /64).' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" max-bytes-total' -l 'max-bytes-total' -d 'Bytes stored in mailboxes in total.' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" handshake-timeout' -l 'handshake-timeout' -d 'Close a connection that has not completed its WebSocket upgrade this long after it was accepted.' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" claim-timeout' -l 'claim-timeout' -d 'Close a WebSocket connection that has not allocated, claimed or attached this long after the upgrade.' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" claims-per-minute' -l 'claims-per-minute' -d 'Nameplate allocations and claims allowed per client address (IPv6: per /64) per minute; 0: no limit.' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" max-tombstones-per-address' -l 'max-tombstones-per-address' -d 'Abandoned allocated nameplates kept refused (\'expired\') per client address.' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" max-connections-per-address' -l 'max-connections-per-address' -d 'Open connections allowed per client address (IPv6: per /64), counted at accept time.' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" max-mailboxes-per-address' -l 'max-mailboxes-per-address' -d 'Open mailboxes allowed per client address.' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" max-mailboxes' -l 'max-mailboxes' -d 'Open mailboxes allowed in total.' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" max-connections' -l 'max-connections' -d 'Open connections allowed in total (lowered to fit the descriptor limit).' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" tls-cert' -l 'tls-cert' -d 'PEM certificate chain: serve wss:// (TLS) instead of ws://.' -rF
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" tls-key' -l 'tls-key' -d 'PEM private key for --tls-cert.' -rF
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" web' -l 'web' -d 'Serve the browser page from this directory (default: the one installed with tern).' -rfa '(__tern_complete_directories)'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" no-web' -l 'no-web' -d 'Serve no browser page at /.'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" metrics-listen' -l 'metrics-listen' -d 'Serve Prometheus metrics at http://ADDR/metrics (off unless given; keep it private).' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" log-level' -l 'log-level' -d 'trace, debug, info, notice, warning, error or critical.' -rfka ''
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" version' -l 'version' -d 'Show the version.'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern relay" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern config" json' -l 'json' -d 'Print one JSON object: each setting with its value and origin.'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern config" version' -l 'version' -d 'Show the version.'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern config" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'tern' -n '__tern_should_offer_completions_for_flags_or_options "tern help" version' -l 'version' -d 'Show the version.'
