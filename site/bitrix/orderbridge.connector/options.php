<?php
/*
 * The module's settings page (Settings → Product settings → Module settings → orderbridge):
 * orderbridge URL, signing secret, site id, timeout, spool directory, and, per person type,
 * whether it is a legal entity and which order property codes hold the buyer's name, phone,
 * e-mail, company and INN. Also shows how many snapshots wait in the spool.
 * The secret is write-only here: the page never prints it back.
 */

use Bitrix\Main\Config\Option;
use Bitrix\Main\Context;
use Bitrix\Main\Loader;
use Bitrix\Main\Localization\Loc;
use Orderbridge\Config;
use Orderbridge\Signature;
use Orderbridge\Spool;

defined('B_PROLOG_INCLUDED') && B_PROLOG_INCLUDED === true || die();

$moduleId = 'orderbridge.connector';
Loc::loadMessages(__FILE__);

global $APPLICATION;
if ($APPLICATION->GetGroupRight($moduleId) < 'W') {
	$APPLICATION->AuthForm(Loc::getMessage('ACCESS_DENIED'));
}
Loader::includeModule($moduleId);
Loader::includeModule('sale');

$request = Context::getCurrent()->getRequest();
$fields = ['name', 'phone', 'email', 'company', 'inn'];
$errors = [];

$personTypes = [];
$rows = \Bitrix\Sale\Internals\PersonTypeTable::getList([
	'select' => ['ID', 'NAME', 'LID'],
	'order' => ['SORT' => 'ASC', 'ID' => 'ASC'],
]);
while ($row = $rows->fetch()) {
	$personTypes[(string)$row['ID']] = $row;
}

if ($request->isPost() && $request->getPost('save') !== null && check_bitrix_sessid()) {
	$url = trim((string)$request->getPost('url'));
	if ($url !== '' && !preg_match('#^https?://[^\s/]+(:\d+)?(/\S*)?$#', $url)) {
		$errors[] = Loc::getMessage('ORDERBRIDGE_ERR_URL');
	}
	$secret = trim((string)$request->getPost('signing_secret'));
	if ($secret !== '') {
		try {
			Signature::key($secret);
		} catch (\InvalidArgumentException $e) {
			$errors[] = Loc::getMessage('ORDERBRIDGE_ERR_SECRET');
		}
	}
	$timeout = (float)$request->getPost('timeout');
	if ($timeout <= 0 || $timeout > Config::MAX_TIMEOUT) {
		$errors[] = Loc::getMessage('ORDERBRIDGE_ERR_TIMEOUT');
	}
	$map = [];
	$posted = (array)$request->getPost('person_types');
	foreach ($personTypes as $id => $type) {
		$in = (array)($posted[$id] ?? []);
		$entry = ['legal' => ($in['legal'] ?? '') === 'Y'];
		foreach ($fields as $f) {
			$code = trim((string)($in[$f] ?? ''));
			if ($code !== '' && !preg_match('/^[A-Za-z0-9_]{1,50}$/', $code)) {
				$errors[] = Loc::getMessage('ORDERBRIDGE_ERR_CODE', ['#CODE#' => htmlspecialcharsbx($code)]);
			}
			if ($code !== '') {
				$entry[$f] = $code;
			}
		}
		$map[$id] = $entry;
	}
	if (!$errors) {
		Option::set($moduleId, 'url', rtrim($url, '/'));
		if ($secret !== '') { // empty means "keep the current one"
			Option::set($moduleId, 'signing_secret', $secret);
		}
		Option::set($moduleId, 'site_id', trim((string)$request->getPost('site_id')));
		Option::set($moduleId, 'timeout', (string)$timeout);
		Option::set($moduleId, 'spool_dir', trim((string)$request->getPost('spool_dir')));
		Option::set($moduleId, 'person_types', json_encode($map));
		LocalRedirect($APPLICATION->GetCurPage() . '?mid=' . urlencode($moduleId) . '&lang=' . LANGUAGE_ID);
	}
}

$config = Config::load();
$spool = new Spool($config->spoolDir);
$secretSet = Option::get($moduleId, 'signing_secret', '') !== '';

if ($errors) {
	CAdminMessage::ShowMessage(implode('<br>', $errors));
}
CAdminMessage::ShowNote(Loc::getMessage('ORDERBRIDGE_SPOOL_STATE', [
	'#WAITING#' => $spool->count(),
	'#REJECTED#' => $spool->rejectedCount(),
	'#DIR#' => htmlspecialcharsbx($config->spoolDir),
]));

$tabs = new CAdminTabControl('orderbridge_tabs', [
	['DIV' => 'main', 'TAB' => Loc::getMessage('ORDERBRIDGE_TAB_MAIN'), 'TITLE' => Loc::getMessage('ORDERBRIDGE_TAB_MAIN')],
	['DIV' => 'buyers', 'TAB' => Loc::getMessage('ORDERBRIDGE_TAB_BUYERS'), 'TITLE' => Loc::getMessage('ORDERBRIDGE_TAB_BUYERS_TITLE')],
]);
$h = 'htmlspecialcharsbx';
?>
<form method="post" action="<?= $h($APPLICATION->GetCurPage()) ?>?mid=<?= urlencode($moduleId) ?>&amp;lang=<?= LANGUAGE_ID ?>">
<?= bitrix_sessid_post() ?>
<?php $tabs->Begin(); $tabs->BeginNextTab(); ?>
	<tr>
		<td width="40%"><?= Loc::getMessage('ORDERBRIDGE_URL') ?></td>
		<td><input type="text" size="50" name="url" value="<?= $h($config->url) ?>" placeholder="https://orderbridge.example.ru"></td>
	</tr>
	<tr>
		<td><?= Loc::getMessage('ORDERBRIDGE_SECRET') ?></td>
		<td><input type="password" size="50" name="signing_secret" value="" autocomplete="new-password"
			placeholder="<?= $secretSet ? $h(Loc::getMessage('ORDERBRIDGE_SECRET_SET')) : 'whsec_…' ?>"></td>
	</tr>
	<tr>
		<td><?= Loc::getMessage('ORDERBRIDGE_SITE_ID') ?></td>
		<td><input type="text" size="30" name="site_id" value="<?= $h($config->siteId) ?>"></td>
	</tr>
	<tr>
		<td><?= Loc::getMessage('ORDERBRIDGE_TIMEOUT') ?></td>
		<td><input type="text" size="5" name="timeout" value="<?= $h((string)$config->timeout) ?>"></td>
	</tr>
	<tr>
		<td><?= Loc::getMessage('ORDERBRIDGE_SPOOL_DIR') ?></td>
		<td><input type="text" size="50" name="spool_dir" value="<?= $h(Option::get($moduleId, 'spool_dir', '')) ?>"
			placeholder="<?= $h(Config::defaultSpoolDir()) ?>"></td>
	</tr>
<?php $tabs->BeginNextTab(); ?>
	<tr><td colspan="2"><?= Loc::getMessage('ORDERBRIDGE_BUYERS_HINT') ?></td></tr>
<?php foreach ($personTypes as $id => $type): $t = $config->personType($id); $raw = $config->personTypes[$id] ?? []; ?>
	<tr class="heading"><td colspan="2"><?= $h($type['NAME']) ?> [<?= (int)$id ?>, <?= $h($type['LID']) ?>]</td></tr>
	<tr>
		<td width="40%"><?= Loc::getMessage('ORDERBRIDGE_LEGAL') ?></td>
		<td><input type="checkbox" name="person_types[<?= (int)$id ?>][legal]" value="Y"<?= $t['legal'] ? ' checked' : '' ?>></td>
	</tr>
	<?php foreach ($fields as $f): ?>
	<tr>
		<td><?= Loc::getMessage('ORDERBRIDGE_FIELD_' . strtoupper($f)) ?></td>
		<td><input type="text" size="20" name="person_types[<?= (int)$id ?>][<?= $f ?>]"
			value="<?= $h((string)($raw[$f] ?? '')) ?>" placeholder="<?= $h($t[$f] !== '' ? $t[$f] : (in_array($f, ['company', 'inn'], true) ? '' : Loc::getMessage('ORDERBRIDGE_BY_FLAG'))) ?>"></td>
	</tr>
	<?php endforeach; ?>
<?php endforeach; ?>
<?php $tabs->Buttons(); ?>
	<input type="submit" name="save" value="<?= $h(Loc::getMessage('ORDERBRIDGE_SAVE')) ?>" class="adm-btn-save">
<?php $tabs->End(); ?>
</form>
