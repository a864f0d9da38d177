FROM busybox
LABEL one="1" \
      two="multi word \
continued" \
      "three"='sq $X' \
      four=a\ b
LABEL "with \"escaped\" quote"="v\"q"
