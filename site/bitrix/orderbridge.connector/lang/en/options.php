<?php
/* English texts of options.php. */
$MESS['ORDERBRIDGE_TAB_MAIN'] = 'Connection';
$MESS['ORDERBRIDGE_TAB_BUYERS'] = 'Buyers';
$MESS['ORDERBRIDGE_TAB_BUYERS_TITLE'] = 'Buyer fields by person type';
$MESS['ORDERBRIDGE_URL'] = 'orderbridge URL';
$MESS['ORDERBRIDGE_SECRET'] = 'Signing secret (whsec_…)';
$MESS['ORDERBRIDGE_SECRET_SET'] = 'set; leave empty to keep it';
$MESS['ORDERBRIDGE_SITE_ID'] = 'Site id (as in orderbridge\'s [site] id)';
$MESS['ORDERBRIDGE_TIMEOUT'] = 'Timeout, seconds (at most 2)';
$MESS['ORDERBRIDGE_SPOOL_DIR'] = 'Spool directory (better outside the web root)';
$MESS['ORDERBRIDGE_BUYERS_HINT'] = 'Order property codes. Empty name, phone or e-mail: the property marked "payer", "phone" or "e-mail" is used.';
$MESS['ORDERBRIDGE_BY_FLAG'] = 'by property flag';
$MESS['ORDERBRIDGE_LEGAL'] = 'Legal entity';
$MESS['ORDERBRIDGE_FIELD_NAME'] = 'Name (contact person)';
$MESS['ORDERBRIDGE_FIELD_PHONE'] = 'Phone';
$MESS['ORDERBRIDGE_FIELD_EMAIL'] = 'E-mail';
$MESS['ORDERBRIDGE_FIELD_COMPANY'] = 'Company';
$MESS['ORDERBRIDGE_FIELD_INN'] = 'INN';
$MESS['ORDERBRIDGE_SAVE'] = 'Save';
$MESS['ORDERBRIDGE_ERR_URL'] = 'The orderbridge URL must start with http:// or https://.';
$MESS['ORDERBRIDGE_ERR_SECRET'] = 'The signing secret must be whsec_ followed by base64 of 16 to 64 bytes.';
$MESS['ORDERBRIDGE_ERR_TIMEOUT'] = 'The timeout must be more than 0 and at most 2 seconds.';
$MESS['ORDERBRIDGE_ERR_CODE'] = 'Not a property code: #CODE#';
$MESS['ORDERBRIDGE_SPOOL_STATE'] = 'Spool #DIR#: #WAITING# waiting to be sent, #REJECTED# rejected by orderbridge (see rejected/ and the event log).';
