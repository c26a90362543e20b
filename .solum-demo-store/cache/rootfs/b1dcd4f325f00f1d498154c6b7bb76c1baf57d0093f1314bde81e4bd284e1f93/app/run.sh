#!/bin/sh
echo "${GREETING:-Hello} from the hello DU"
cat /app/public/build-info.txt
