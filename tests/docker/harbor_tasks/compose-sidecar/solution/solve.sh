#!/bin/sh
python3 -c "import urllib.request; open('/app/secret.txt','wb').write(urllib.request.urlopen('http://store:8000/secret.txt').read())"
