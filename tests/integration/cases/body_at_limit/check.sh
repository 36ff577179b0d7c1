assert_eq "$(wc -c <"$TT_TMP/request" | tr -d ' ')" 2048 "request size (test precondition)"
