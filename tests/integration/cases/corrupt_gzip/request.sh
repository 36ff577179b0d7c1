# A gzip header followed by bytes that are not a deflate stream.
printf '\037\213\010\000\000\000\000\000\000\003this is not deflate data at all, not at all\n'
